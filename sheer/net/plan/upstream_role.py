"""An upstream's share of a plan: its replies' way back (through the proxy, or origin NAT)."""

from __future__ import annotations

from ipaddress import ip_network

from sheer.net.items import Item, NftChain, NftRule, NftTable, Route, Rule, Sysctl, ip_cmd
from sheer.net.plan.builder import NFT_TABLE, Builder, Plan, Proto, Service
from sheer.net.plan.family import V4, Family, family_of, version_of


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
    fam = family_of(version_of(host) or 4)
    dev = b.kernel.dev_of(host)
    if dev is None:
        b.notes.append(f"{host} is not an address of this network namespace: these are the commands "
                       "to run on that upstream (`apply` must run there)")
    internal = opts.internal or _internal(b, dev, fam)
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
            if version_of(vip) != fam.version:
                b.problems.append(f"{s.where}: the public address {vip} and the upstream {host} are of "
                                  f"different families: pass the proxy's {fam} address with --vip")
                continue
            rewrites[(u.port, vip, s.listen.port)] = None
        else:
            back[(s.proto, u.port)] = None

    items: list[Item] = []
    tail: list[Item] = []
    if back:
        gateway = opts.gateway or b.kernel.default_gateway(fam.version)
        if gateway is None:
            b.problems.append("no default gateway here to route replies through: pass --gateway (the proxy's "
                              "internal address)")
        else:
            b.notes.append(f"replies go back through the proxy {gateway} by policy routing on their source "
                           "port, so the upstream's other traffic keeps its own routes (the article instead "
                           f"moves the default route: `{ip_cmd(fam.version)} route replace default via "
                           f"{gateway}`)")
            tail.extend(_return_path(b, host, dev, internal, gateway, sorted(back), fam))
    if rewrites:
        if internal is None:
            b.problems.append(f"cannot tell {host}'s internal network (replies to it, health checks "
                              "included, must not be rewritten): pass --internal CIDR")
        else:
            ip = fam.nft
            article = ("# the article's, with act_nat (rewrites every destination, health-check replies "
                       "too): "
                       f"tc filter add dev {dev or 'eth0'} parent 10: protocol ip prio 10 u32 match ip src "
                       f"{host}/32 match ip sport {{port}} 0xffff action nat egress {host}/32 {{vip}}"
                       if fam is V4 else "# no ip6tables equivalent (stateless), and tc act_nat is IPv4 "
                       f"only: nft rewrites {host} udp sport {{port}} to {{vip}} on output")
            rules = [NftRule(
                f"{ip} saddr {host} {ip} daddr != {internal} udp sport {port} {ip} saddr set {vip}"
                + (f" udp sport set {public}" if public != port else "") + " counter",
                article.format(port=port, vip=vip))
                for port, vip, public in sorted(rewrites)]
            items.append(NftTable(NFT_TABLE,
                                  (NftChain("dsr_origin", "filter", "output", "filter", tuple(rules)),), ip))
            b.notes.append("origin NAT: nft rewrites the replies on output, except towards the internal "
                           f"network {internal} (health checks); tc u32 cannot express that exception")
        items[:0] = _rp_filter(b, dev) if fam is V4 else []
        if fam is not V4 and b.kernel.fib_checks:
            b.notes.append("nft `fib saddr` checks in " + ", ".join(b.kernel.fib_checks) + " (IPv6's "
                           "reverse-path filter) are left alone: the return router's must accept the VIP "
                           "as a source arriving from the upstreams")
        if opts.via:
            tail.extend(_return_path(b, host, dev, internal, opts.via,
                                     sorted({("udp", p) for p, _, _ in rewrites}), fam))
        else:
            b.notes.append("origin NAT replies follow this host's routes: the next hop must forward a "
                           "source address it does not own (rp_filter 0 or 2 there); pass --via ROUTER "
                           "to send them through a separate return router")
    b.items.extend([*items, *tail])
    return b.plan(None, b.options.table if b.options.table else None)


def _internal(b: Builder, dev: str | None, fam: Family) -> str | None:
    nets = b.kernel.networks_of(dev, fam.version) if dev else ()
    return str(nets[0]) if nets else None


def _return_path(b: Builder, host: str, dev: str | None, internal: str | None, gateway: str,
                 ports: list[tuple[Proto, int]], fam: Family) -> list[Item]:
    if version_of(gateway) != fam.version:
        b.problems.append(f"the gateway {gateway} and the upstream {host} are of different families: pass "
                          f"the proxy's (or router's) {fam} address")
        return []
    table = b.choose_table()
    items: list[Item] = [Route(table, fam.anywhere, via=gateway)]
    if dev and internal and ip_network(internal, strict=False).prefixlen < fam.host_len:
        # neighbours on the internal network (the proxy's health checks) stay one hop away
        items.append(Route(table, internal, dev=dev))
    items.extend(Rule(table, b.priority, src=host, ipproto=proto, sport=port, family=fam.version)
                 for proto, port in ports)
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

