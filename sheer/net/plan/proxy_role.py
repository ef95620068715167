"""The proxy's share of a plan: Method 1's capture of replies, DSR router NAT."""

from __future__ import annotations

from sheer.net.facts import KernelFacts
from sheer.net.fastpath_plan import notrack_rules, plan_fastpath
from sheer.net.items import DUMMY, Item, NftChain, NftRule, NftTable, Route, Rule, Sysctl, TcClsact, TcNat
from sheer.net.plan.builder import NFT_TABLE, Builder, Plan, Service, is_ipv4, nft_set, upstream_problems

TC_PRIO = 0xC000                  # our u32 filters' priorities start here, clear of hand-made ones
# where a VIP lives without facing anyone: the traffic to it comes in elsewhere (announce: ECMP)
HOLDERS = ("lo", DUMMY)


def client_facing(kernel: KernelFacts, found: list[Service]) -> str | None:
    """The interface holding a specific listen address; for wildcard listens, the one interface
    with an address that does not face the upstreams (or, if several, the default route's)."""
    for service in found:
        if not service.listen.is_wildcard:
            dev = kernel.dev_of(service.listen.host)
            if dev and dev not in HOLDERS:
                return dev
    towards = {route.dev for s in found for u in s.upstreams if is_ipv4(u.host)
               for route in [kernel.route_to(u.host)] if route and route.dev}
    candidates = sorted({a.dev for a in kernel.addresses if a.dev not in HOLDERS} - towards)
    if len(candidates) == 1:
        return candidates[0]
    default = kernel.route_to("0.0.0.0") if kernel.default_gateway() else None
    if default and default.dev in candidates:
        return default.dev
    return None


def _vip(b: Builder, service: Service, public_if: str | None) -> str | None:
    if b.options.vip:
        return b.options.vip
    if not service.listen.is_wildcard:
        return service.listen.host
    addrs = [a for a in b.kernel.addresses if a.dev == public_if]
    return str(addrs[0].interface.ip) if addrs else None


def plan_proxy(b: Builder, found: list[Service]) -> Plan:
    opts = b.options
    transparent = [s for s in found if not s.dsr]
    dsr = [s for s in found if s.dsr]
    mode = opts.dsr or "router"
    public_if = opts.public_if or client_facing(b.kernel, found)
    if public_if is None and b.kernel.addresses:
        b.notes.append("cannot tell which interface faces the clients (pass --public-if)")
    sysctls: list[Item] = []
    prerouting: list[NftRule] = []
    chains: list[NftChain] = []
    tail: list[Item] = []
    mark = table = None

    if dsr and mode == "router" and transparent:
        # Router NAT's replies must be forwarded, never captured: a still-open sender socket bound
        # to the client's ip:port would otherwise match `socket transparent` and swallow them.
        addrs = [u.host for s in dsr for u in s.upstreams if is_ipv4(u.host)]
        ports = [str(u.port) for s in dsr for u in s.upstreams]
        prerouting.append(NftRule(
            f"ip saddr {nft_set(addrs)} udp sport {nft_set(ports)} return",
            f"iptables -t mangle -A PREROUTING -p udp -s {','.join(dict.fromkeys(addrs))} "
            f"-m multiport --sports {','.join(dict.fromkeys(ports))} -j RETURN"))

    if transparent:
        mark, table = b.choose_mark(), b.choose_table()
        for s in transparent:
            for u in s.upstreams:
                b.problems.extend(upstream_problems(b.kernel, u, public_if, f"{s.where} listen {s.listen}"))
        prerouting.extend(_mark_rules(b, transparent, mark))
        tail.append(Route(table, "0.0.0.0/0", "local", dev="lo"))
        tail.append(Rule(table, b.priority, fwmark=mark))
        if any(s.proto == "udp" for s in transparent):
            b.notes.append("UDP replies are marked too: with proxy_responses >= 1 they must reach the "
                           "transparent socket bound to the client's address")

    fast = plan_fastpath(b.kernel, list(dsr), public_if, lambda s: _vip(b, s, public_if),  # type: ignore[arg-type]
                         opts.fastpath) if dsr else None
    if dsr and mode == "origin":
        b.notes.append("DSR origin NAT: the upstreams answer clients themselves; the proxy needs "
                       "nothing for those replies. Run `sheer net apply --role upstream --host ADDR "
                       "--dsr origin` on each upstream")
        if fast and fast.item:
            sysctls.append(Sysctl("net.ipv4.ip_forward", "1"))
            b.notes.append("the fast path forwards client datagrams to the upstreams: net.ipv4.ip_forward=1")
    elif dsr:
        sysctls.append(Sysctl("net.ipv4.ip_forward", "1"))
        sysctls.append(Sysctl("net.ipv4.udp_early_demux", "0"))
        b.notes.append("router NAT forwards the upstreams' replies: net.ipv4.ip_forward=1")
        b.notes.append("net.ipv4.udp_early_demux=0: if any sender (nginx, say) keeps a connected UDP "
                       "socket bound to the client's ip:port open, early demux attaches the forwarded "
                       "reply to it and ip_forward() drops it; off by design, restored by revert")
        nat_chains, nat_items = _router_nat(b, dsr, public_if)
        chains.extend(nat_chains)
        tail[:0] = nat_items

    if prerouting:
        chains.insert(0, NftChain("prerouting", "filter", "prerouting", "mangle", tuple(prerouting)))
    fast_items: list[Item] = []
    if fast is not None:
        b.notes.extend(fast.notes)
        b.problems.extend(fast.problems)
        if fast.item is not None and public_if is not None:
            if b.kernel.conntrack or opts.masquerade:
                chains.insert(0, NftChain("no_conntrack", "filter", "prerouting", "raw",
                                          tuple(notrack_rules(fast.item, public_if, mode == "router"))))
                b.notes.append("conntrack runs here: notrack rules keep it from making an entry for every "
                               "client ip:port the fast path forwards")
            else:
                b.notes.append("conntrack keeps no entries here: no notrack rules needed (`sheer doctor` "
                               "says so if that changes; apply again then)")
            fast_items.append(fast.item)
    table_items: list[Item] = [NftTable(NFT_TABLE, tuple(chains))] if chains else []
    # the fast path last: the replies' rewrite and forwarding are in place before the kernel steers
    b.items.extend([*sysctls, *table_items, *fast_items, *tail])
    return b.plan(mark, table)


def _mark_rules(b: Builder, transparent: list[Service], mark: int) -> list[NftRule]:
    hexmark = f"{mark:#x}"
    xmark = f"-j MARK --set-xmark {hexmark}/0xffffffff"
    if b.options.match == "socket":
        addrs = [u.host for s in transparent for u in s.upstreams]
        scoped = all(is_ipv4(a) for a in addrs)
        scope = f"ip saddr {nft_set(addrs)} " if scoped else ""
        iscope = f" -s {','.join(dict.fromkeys(addrs))}" if scoped else ""
        b.notes.append(f"marking: `socket transparent 1` marks only replies that belong to a local "
                       f"transparent socket (any upstream port, TCP and UDP); fwmark {hexmark} -> table")
        return [NftRule(f"{scope}socket transparent 1 meta mark set {hexmark} counter",
                        f"iptables -t mangle -A PREROUTING{iscope} -m socket --transparent {xmark}")]
    rules: list[NftRule] = []
    for proto in ("tcp", "udp"):
        ups = [u for s in transparent if s.proto == proto for u in s.upstreams]
        if not ups:
            continue
        addrs = [u.host for u in ups]
        ports = [str(u.port) for u in ups]
        text = f"ip saddr {nft_set(addrs)} {proto} sport {nft_set(ports)} meta mark set {hexmark} counter"
        for port in dict.fromkeys(ports):
            rules.append(NftRule(text, f"iptables -t mangle -A PREROUTING -p {proto} "
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


def _router_nat(b: Builder, dsr: list[Service], public_if: str | None) -> tuple[list[NftChain], list[Item]]:
    rewrites: dict[tuple[str, int], tuple[str, int]] = {}
    for s in dsr:
        vip = _vip(b, s, public_if)
        if vip is None:
            b.problems.append(f"{s.where}: cannot tell the public address for listen {s.listen} (pass --vip)")
            continue
        for u in s.upstreams:
            b.problems.extend(upstream_problems(b.kernel, u, public_if, f"{s.where} listen {s.listen}"))
            if not is_ipv4(u.host):
                b.problems.append(f"{s.where}: DSR upstream {u.name} must be an IPv4 address for a stateless "
                                  "rewrite")
                continue
            key, target = (u.host, u.port), (vip, s.listen.port)
            if rewrites.setdefault(key, target) != target:
                b.problems.append(f"{s.where}: upstream {u.name} serves two DSR listeners: its replies "
                                  "cannot be rewritten to both")
    if public_if is None:
        b.problems.append("router NAT: cannot tell which interface faces the clients (pass --public-if)")
        return [], []
    nat = b.options.nat
    if nat == "auto":
        nat = "tc" if b.kernel.act_nat else "nft"
        b.notes.append("rewrite: tc u32 + action nat (act_nat is available)" if nat == "tc" else
                       "rewrite: tc act_nat is missing on this kernel: using an nftables stateless rewrite")
    elif nat == "tc" and not b.kernel.act_nat:
        b.problems.append("--nat tc: this kernel has no act_nat (tc actions); use --nat nft")
    chains: list[NftChain] = []
    items: list[Item] = []
    if nat == "tc":
        items.append(TcClsact(public_if))
        for i, ((addr, port), (vip, public)) in enumerate(sorted(rewrites.items())):
            if port != public:
                b.problems.append(f"tc nat rewrites addresses only: upstream {addr}:{port} cannot answer "
                                  f"as {vip}:{public}; use --nat nft, or make the ports equal")
            items.append(TcNat(public_if, addr, port, vip, TC_PRIO + i))
    else:
        rules: list[NftRule] = []
        groups: dict[tuple[int, str, int], list[str]] = {}
        for (addr, port), (vip, public) in sorted(rewrites.items()):
            groups.setdefault((port, vip, public), []).append(addr)
        for (port, vip, public), addrs in groups.items():
            sport = f" udp sport set {public}" if public != port else ""
            article = "\n".join(
                "# no iptables equivalent (stateless); the article's, with act_nat: "
                + TcNat(public_if, a, port, vip, 0).commands()[0].replace(" prio 0", "") for a in addrs)
            rules.append(NftRule(f'oifname "{public_if}" ip saddr {nft_set(addrs)} udp sport {port} '
                                 f"ip saddr set {vip}{sport} counter", article))
        chains.append(NftChain("dsr_rewrite", "filter", "postrouting", "srcnat - 10", tuple(rules)))
    if b.options.masquerade:
        addrs = sorted({a for a, _ in rewrites})
        chains.append(NftChain("upstreams_masquerade", "nat", "postrouting", "srcnat", (NftRule(
            f'oifname "{public_if}" ip saddr {nft_set(addrs)} masquerade',
            f"iptables -t nat -A POSTROUTING -o {public_if} -s {','.join(addrs)} -j MASQUERADE"),)))
        b.notes.append("masquerade: the upstreams' own connections to outside hosts leave as the proxy; "
                       "DSR replies were already rewritten (srcnat - 10) and are not touched")
    return chains, items
