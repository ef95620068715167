"""An upstream's share of a plan: its replies' way back (through the proxy, or origin NAT)."""

from __future__ import annotations

from ipaddress import IPv4Network

from sheer.net.items import Item, NftChain, NftRule, NftTable, Route, Rule, Sysctl
from sheer.net.plan.builder import NFT_TABLE, Builder, Plan, Proto, Service


def plan_upstream(b: Builder, found: list[Service]) -> Plan:
    opts = b.options
    host = opts.host
    if host is None:
        b.problems.append("--role upstream needs --host ADDR (this upstream's address in the config)")
        return b.plan()
    mine = [(s, u) for s in found for u in s.upstreams if u.host == host]
    if not mine:
        b.problems.append(f"{host} is not an upstream of any transparent server in the config")
        return b.plan()
    dev = b.kernel.dev_of(host)
    if dev is None:
        b.notes.append(f"{host} is not an address of this network namespace: these are the commands "
                       "to run on that upstream (`apply` must run there)")
    internal = opts.internal or _internal(b, dev)
    origin = opts.dsr == "origin"
    back: dict[tuple[Proto, int], None] = {}
    rewrites: dict[tuple[int, str, int], None] = {}
    for s, u in mine:
        if s.dsr and origin:
            vip = opts.vip or (None if s.listen.is_wildcard else s.listen.host)
            if vip is None:
                b.problems.append(f"{s.where}: listen {s.listen} is a wildcard: pass --vip (the proxy's "
                                  "public address)")
                continue
            rewrites[(u.port, vip, s.listen.port)] = None
        else:
            back[(s.proto, u.port)] = None

    items: list[Item] = []
    tail: list[Item] = []
    if back:
        gateway = opts.gateway or b.kernel.default_gateway()
        if gateway is None:
            b.problems.append("no default gateway here to route replies through: pass --gateway (the proxy's "
                              "internal address)")
        else:
            b.notes.append(f"replies go back through the proxy {gateway} by policy routing on their source "
                           "port, so the upstream's other traffic keeps its own routes (the article instead "
                           f"moves the default route: `ip route replace default via {gateway}`)")
            tail.extend(_return_path(b, host, dev, internal, gateway, sorted(back)))
    if rewrites:
        if internal is None:
            b.problems.append(f"cannot tell {host}'s internal network (replies to it, health checks "
                              "included, must not be rewritten): pass --internal CIDR")
        else:
            rules = [NftRule(
                f"ip saddr {host} ip daddr != {internal} udp sport {port} ip saddr set {vip}"
                + (f" udp sport set {public}" if public != port else "") + " counter",
                f"# the article's, with act_nat (rewrites every destination, health-check replies too): "
                f"tc filter add dev {dev or 'eth0'} parent 10: protocol ip prio 10 u32 match ip src "
                f"{host}/32 match ip sport {port} 0xffff action nat egress {host}/32 {vip}")
                for port, vip, public in sorted(rewrites)]
            items.append(NftTable(NFT_TABLE,
                                  (NftChain("dsr_origin", "filter", "output", "filter", tuple(rules)),)))
            b.notes.append("origin NAT: nft rewrites the replies on output, except towards the internal "
                           f"network {internal} (health checks); tc u32 cannot express that exception")
        items[:0] = _rp_filter(b, dev)
        if opts.via:
            tail.extend(_return_path(b, host, dev, internal, opts.via,
                                     sorted({("udp", p) for p, _, _ in rewrites})))
        else:
            b.notes.append("origin NAT replies follow this host's routes: the next hop must forward a "
                           "source address it does not own (rp_filter 0 or 2 there); pass --via ROUTER "
                           "to send them through a separate return router")
    b.items.extend([*items, *tail])
    return b.plan(None, b.options.table if b.options.table else None)


def _internal(b: Builder, dev: str | None) -> str | None:
    nets = b.kernel.networks_of(dev) if dev else ()
    return str(nets[0]) if nets else None


def _return_path(b: Builder, host: str, dev: str | None, internal: str | None, gateway: str,
                 ports: list[tuple[Proto, int]]) -> list[Item]:
    table = b.choose_table()
    items: list[Item] = [Route(table, "0.0.0.0/0", via=gateway)]
    if dev and internal and IPv4Network(internal).prefixlen < 32:
        # neighbours on the internal network (the proxy's health checks) stay one hop away
        items.append(Route(table, internal, dev=dev))
    items.extend(Rule(table, b.priority, src=host, ipproto=proto, sport=port) for proto, port in ports)
    return items


def _rp_filter(b: Builder, dev: str | None) -> list[Item]:
    """Strict reverse-path filtering (1) drops requests whose client address routes out elsewhere;
    loose (2) only asks that it be routable. 0 and 2 are left as they are."""
    out: list[Item] = []
    for name in ("all", dev):
        if name is None:
            continue
        key = f"net.ipv4.conf.{name}.rp_filter"
        if b.kernel.sysctls.get(key) == "1":
            out.append(Sysctl(key, "2"))
    if out:
        b.notes.append("rp_filter strict -> loose (2) for the return path")
    return out

