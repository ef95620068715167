"""The proxy's share of a plan: Method 1's capture of replies, DSR router NAT; per address family
(the upstreams' family decides: an IPv6 upstream answers from an IPv6 address), dual-stack configs
getting both, one fwmark and one table number serving both families."""

from __future__ import annotations

from sheer.net.facts import KernelFacts
from sheer.net.fastpath_plan import notrack_rules, plan_fastpath
from sheer.net.items import DUMMY, Item, NftChain, NftRule, NftTable, Route, Rule, Sysctl
from sheer.net.plan.builder import (
    NFT_TABLE,
    Builder,
    Plan,
    Service,
    family_problems,
    is_ip,
    nft_set,
    upstream_problems,
)
from sheer.net.plan.family import V4, V6, Family, families, family_of, version_of
from sheer.net.plan.router_nat import router_nat, vip

# where a VIP lives without facing anyone: the traffic to it comes in elsewhere (announce: ECMP)
HOLDERS = ("lo", DUMMY)
EARLY_DEMUX = "net.ipv4.udp_early_demux"    # IPv6's UDP early demux reads this one too (ip6_rcv_finish)


def client_facing(kernel: KernelFacts, found: list[Service]) -> str | None:
    """The interface holding a specific listen address; for wildcard listens, the one interface
    with an address that does not face the upstreams (or, if several, the default route's)."""
    for service in found:
        if not service.listen.is_wildcard:
            dev = kernel.dev_of(service.listen.host)
            if dev and dev not in HOLDERS:
                return dev
    towards = {route.dev for s in found for u in s.upstreams if is_ip(u.host)
               for route in [kernel.route_to(u.host)] if route and route.dev}
    candidates = sorted({a.dev for a in kernel.addresses
                         if a.dev not in HOLDERS and not a.link_local} - towards)
    if len(candidates) == 1:
        return candidates[0]
    default = kernel.route_to("0.0.0.0") if kernel.default_gateway() else None
    if default and default.dev in candidates:
        return default.dev
    return None


def _hosts(services: list[Service], fam: Family) -> list[str]:
    return [u.host for s in services for u in s.upstreams if version_of(u.host) == fam.version]


def plan_proxy(b: Builder, found: list[Service]) -> Plan:
    opts = b.options
    transparent = [s for s in found if not s.dsr]
    dsr = [s for s in found if s.dsr]
    mode = opts.dsr or "router"
    public_if = opts.public_if or client_facing(b.kernel, found)
    if public_if is None and b.kernel.addresses:
        b.notes.append("cannot tell which interface faces the clients (pass --public-if)")
    for s in found:
        b.problems.extend(family_problems(s, f"{s.where} listen {s.listen}"))
    sysctls: list[Item] = []
    tables: list[Item] = []
    tail: list[Item] = []
    mark = table = None
    if transparent:
        mark, table = b.choose_mark(), b.choose_table()
        for s in transparent:
            for u in s.upstreams:
                b.problems.extend(upstream_problems(b.kernel, u, public_if, f"{s.where} listen {s.listen}"))
        if any(s.proto == "udp" for s in transparent):
            b.notes.append("UDP replies are marked too: with proxy_responses >= 1 they must reach the "
                           "transparent socket bound to the client's address")

    fast = plan_fastpath(b.kernel, list(dsr), public_if,
                         lambda s: vip(b, s, public_if, family_of(s.listen.family)),  # type: ignore[arg-type, attr-defined]
                         opts.fastpath) if dsr else None
    dsr_families = families(u.host for s in dsr for u in s.upstreams)
    if dsr and mode == "origin":
        b.notes.append("DSR origin NAT: the upstreams answer clients themselves; the proxy needs "
                       "nothing for those replies. Run `sheer net apply --role upstream --host ADDR "
                       "--dsr origin` on each upstream")
        if fast and fast.item:
            steered = [fam for fam in (V4, V6) if any(s.family == fam.version for s in fast.item.services)]
            sysctls.extend(Sysctl(fam.forwarding, "1") for fam in steered)
            b.notes.append("the fast path forwards client datagrams to the upstreams: "
                           + ", ".join(f"{fam.forwarding}=1" for fam in steered))
    elif dsr:
        sysctls.extend(Sysctl(fam.forwarding, "1") for fam in dsr_families)
        sysctls.append(Sysctl(EARLY_DEMUX, "0"))
        b.notes.append("router NAT forwards the upstreams' replies: "
                       + ", ".join(f"{fam.forwarding}=1" for fam in dsr_families))
        b.notes.append(f"{EARLY_DEMUX}=0: if any sender (nginx, say) keeps a connected UDP "
                       "socket bound to the client's ip:port open, early demux attaches the forwarded "
                       "reply to it and ip_forward() drops it (IPv6's early demux reads the same switch, "
                       "and ip6_forward() drops the same way); off by design, restored by revert")
        if any(fam.version == 6 for fam in dsr_families):
            b.notes.append("net.ipv6.conf.all.forwarding=1 makes this host a router: it stops accepting "
                           "router advertisements (give it static IPv6 routes)")
        if public_if is None:
            b.problems.append("router NAT: cannot tell which interface faces the clients (pass --public-if)")
    fib_note(b, dsr_families if mode == "router" else [])

    for fam in families(u.host for s in found for u in s.upstreams):
        prerouting: list[NftRule] = []
        chains: list[NftChain] = []
        fam_dsr = _hosts(dsr, fam)
        fam_transparent = _hosts(transparent, fam)
        if fam_dsr and mode == "router" and fam_transparent:
            prerouting.append(_dsr_return(dsr, fam))
        if fam_transparent and mark is not None and table is not None:
            prerouting.extend(_mark_rules(b, [s for s in transparent if _hosts([s], fam)], mark, fam))
            tail.append(Route(table, fam.anywhere, "local", dev="lo"))
            tail.append(Rule(table, b.priority, fwmark=mark, family=fam.version))
        if fam_dsr and mode == "router" and public_if is not None:
            nat_chains, nat_items = router_nat(b, dsr, public_if, fam)
            chains.extend(nat_chains)
            tail[:0] = nat_items
        notrack = (notrack_rules(fast.item, public_if, mode == "router", fam.version)
                   if fast is not None and fast.item is not None and public_if is not None else [])
        if notrack:
            if b.kernel.conntrack or opts.masquerade:
                chains.insert(0, NftChain("no_conntrack", "filter", "prerouting", "raw", tuple(notrack)))
                b.notes.append("conntrack runs here: notrack rules keep it from making an entry for every "
                               "client ip:port the fast path forwards")
            else:
                b.notes.append("conntrack keeps no entries here: no notrack rules needed (`sheer doctor` "
                               "says so if that changes; apply again then)")
        if prerouting:
            chains.insert(0, NftChain("prerouting", "filter", "prerouting", "mangle", tuple(prerouting)))
        if chains:
            tables.append(NftTable(NFT_TABLE, tuple(chains), fam.nft))

    fast_items: list[Item] = []
    if fast is not None:
        b.notes.extend(fast.notes)
        b.problems.extend(fast.problems)
        if fast.item is not None and public_if is not None:
            fast_items.append(fast.item)
    # the fast path last: the replies' rewrite and forwarding are in place before the kernel steers
    b.items.extend([*sysctls, *tables, *fast_items, *tail])
    return b.plan(mark, table)


def fib_note(b: Builder, routed: list[Family]) -> None:
    """IPv6 has no rp_filter; its reverse-path filter is an nft `fib saddr . iif oif missing drop`,
    which sheer does not write and does not change. Forwarded replies arrive from the upstreams' side,
    where their source routes: such a check passes them, but say where one is, since it decides."""
    if not b.kernel.fib_checks or not any(f.version == 6 for f in routed):
        return
    b.notes.append("nft `fib saddr` checks (reverse-path filtering; IPv6 has no rp_filter) in "
                   f"{', '.join(b.kernel.fib_checks)}: left alone; they must accept the upstreams' replies "
                   "(their source routes back out of the interface they arrive on, so a plain check does)")


def _dsr_return(dsr: list[Service], fam: Family) -> NftRule:
    # Router NAT's replies must be forwarded, never captured: a still-open sender socket bound
    # to the client's ip:port would otherwise match `socket transparent` and swallow them.
    addrs = _hosts(dsr, fam)
    ports = [str(u.port) for s in dsr for u in s.upstreams if version_of(u.host) == fam.version]
    return NftRule(
        f"{fam.nft} saddr {nft_set(addrs)} udp sport {nft_set(ports)} return",
        f"{fam.iptables} -t mangle -A PREROUTING -p udp -s {','.join(dict.fromkeys(addrs))} "
        f"-m multiport --sports {','.join(dict.fromkeys(ports))} -j RETURN")


def _mark_rules(b: Builder, transparent: list[Service], mark: int, fam: Family) -> list[NftRule]:
    hexmark = f"{mark:#x}"
    xmark = f"-j MARK --set-xmark {hexmark}/0xffffffff"
    if b.options.match == "socket":
        addrs = _hosts(transparent, fam)
        b.notes.append(f"marking: `socket transparent 1` marks only replies that belong to a local "
                       f"transparent socket (any upstream port, TCP and UDP); fwmark {hexmark} -> table")
        mark_set = f"socket transparent 1 meta mark set {hexmark} counter"
        return [NftRule(f"{fam.nft} saddr {nft_set(addrs)} {mark_set}",
                        f"{fam.iptables} -t mangle -A PREROUTING -s {','.join(dict.fromkeys(addrs))} "
                        f"-m socket --transparent {xmark}")]
    rules: list[NftRule] = []
    for proto in ("tcp", "udp"):
        ups = [u for s in transparent if s.proto == proto for u in s.upstreams
               if version_of(u.host) == fam.version]
        if not ups:
            continue
        addrs = [u.host for u in ups]
        ports = [str(u.port) for u in ups]
        text = (f"{fam.nft} saddr {nft_set(addrs)} {proto} sport {nft_set(ports)} meta mark set {hexmark} "
                "counter")
        for port in dict.fromkeys(ports):
            rules.append(NftRule(text, f"{fam.iptables} -t mangle -A PREROUTING -p {proto} "
                                       f"-s {','.join(dict.fromkeys(addrs))} --sport {port} {xmark}"))
    b.notes.append("marking: the article's per-protocol rules (upstream addresses and service ports)")
    # one nft rule covers every port: keep one copy, print every article line
    seen: dict[str, NftRule] = {}
    for rule in rules:
        if rule.text in seen:
            prev = seen[rule.text]
            seen[rule.text] = NftRule(prev.text, prev.article + "\n" + rule.article)
        else:
            seen[rule.text] = rule
    return list(seen.values())
