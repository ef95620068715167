"""DSR router NAT on the proxy: the upstreams' replies are forwarded through it and their source
rewritten, statelessly, to the public address on the way out to the clients. One family at a time:
tc's act_nat rewrites IPv4 only, so IPv6 replies are always rewritten by nft (`ip6 saddr set`)."""

from __future__ import annotations

from sheer.net.items import Item, NftChain, NftRule, TcClsact, TcNat
from sheer.net.plan.builder import Builder, Service, nft_set, upstream_problems
from sheer.net.plan.family import Family, version_of

TC_PRIO = 0xC000                  # our u32 filters' priorities start here, clear of hand-made ones


def vip(b: Builder, service: Service, public_if: str | None, fam: Family) -> str | None:
    """The public address `service`'s replies must come from, of the upstreams' family."""
    if b.options.vip and version_of(b.options.vip) == fam.version:
        return b.options.vip
    if not service.listen.is_wildcard:
        return service.listen.host if service.listen.family == fam.version else None
    addrs = [a for a in b.kernel.addresses
             if a.dev == public_if and a.family == fam.version and not a.link_local]
    return str(addrs[0].interface.ip) if addrs else None


def rewrites(b: Builder, dsr: list[Service], public_if: str | None,
             fam: Family) -> dict[tuple[str, int], tuple[str, int]]:
    """(upstream address, port) -> (public address, port) for `fam`'s upstreams; problems noted."""
    out: dict[tuple[str, int], tuple[str, int]] = {}
    for s in dsr:
        ups = [u for u in s.upstreams if version_of(u.host) == fam.version]
        if not ups:
            continue
        public = vip(b, s, public_if, fam)
        if public is None:
            b.problems.append(f"{s.where}: cannot tell the {fam} public address for listen {s.listen} "
                              "(pass --vip)")
            continue
        for u in ups:
            b.problems.extend(upstream_problems(b.kernel, u, public_if, f"{s.where} listen {s.listen}"))
            key, target = (u.host, u.port), (public, s.listen.port)
            if out.setdefault(key, target) != target:
                b.problems.append(f"{s.where}: upstream {u.name} serves two DSR listeners: its replies "
                                  "cannot be rewritten to both")
    return out


def router_nat(b: Builder, dsr: list[Service], public_if: str,
               fam: Family) -> tuple[list[NftChain], list[Item]]:
    """`fam`'s rewrite chains (for `table <fam> sheer`) and tc items."""
    found = rewrites(b, dsr, public_if, fam)
    if not found:
        return [], []
    nat = b.options.nat
    if fam.version == 6:
        if nat == "tc":
            b.problems.append("--nat tc: tc's act_nat rewrites IPv4 only; IPv6 replies need --nat nft "
                              "(or auto)")
        nat = "nft"
        b.notes.append("rewrite (IPv6): nftables stateless rewrite (`ip6 saddr set`; tc act_nat is IPv4 "
                       "only)")
    elif nat == "auto":
        nat = "tc" if b.kernel.act_nat else "nft"
        b.notes.append("rewrite: tc u32 + action nat (act_nat is available)" if nat == "tc" else
                       "rewrite: tc act_nat is missing on this kernel: using an nftables stateless rewrite")
    elif nat == "tc" and not b.kernel.act_nat:
        b.problems.append("--nat tc: this kernel has no act_nat (tc actions); use --nat nft")
    chains: list[NftChain] = []
    items: list[Item] = []
    if nat == "tc":
        items.append(TcClsact(public_if))
        for i, ((addr, port), (public, public_port)) in enumerate(sorted(found.items())):
            if port != public_port:
                b.problems.append(f"tc nat rewrites addresses only: upstream {addr}:{port} cannot answer "
                                  f"as {public}:{public_port}; use --nat nft, or make the ports equal")
            items.append(TcNat(public_if, addr, port, public, TC_PRIO + i))
    else:
        chains.append(NftChain("dsr_rewrite", "filter", "postrouting", "srcnat - 10",
                               tuple(_nft_rewrites(found, public_if, fam))))
    if b.options.masquerade:
        addrs = sorted({a for a, _ in found})
        chains.append(NftChain("upstreams_masquerade", "nat", "postrouting", "srcnat", (NftRule(
            f'oifname "{public_if}" {fam.nft} saddr {nft_set(addrs)} masquerade',
            f"{fam.iptables} -t nat -A POSTROUTING -o {public_if} -s {','.join(addrs)} -j MASQUERADE"),)))
        b.notes.append("masquerade: the upstreams' own connections to outside hosts leave as the proxy; "
                       "DSR replies were already rewritten (srcnat - 10) and are not touched")
    return chains, items


def _nft_rewrites(found: dict[tuple[str, int], tuple[str, int]], public_if: str,
                  fam: Family) -> list[NftRule]:
    rules: list[NftRule] = []
    groups: dict[tuple[int, str, int], list[str]] = {}
    for (addr, port), (public, public_port) in sorted(found.items()):
        groups.setdefault((port, public, public_port), []).append(addr)
    for (port, public, public_port), addrs in groups.items():
        sport = f" udp sport set {public_port}" if public_port != port else ""
        if fam.version == 4:
            article = "\n".join(
                "# no iptables equivalent (stateless); the article's, with act_nat: "
                + TcNat(public_if, a, port, public, 0).commands()[0].replace(" prio 0", "") for a in addrs)
        else:
            article = (f"# no ip6tables equivalent (stateless), and tc act_nat is IPv4 only: nft rewrites "
                       f"{', '.join(addrs)} udp sport {port} to {public}")
        rules.append(NftRule(f'oifname "{public_if}" {fam.nft} saddr {nft_set(addrs)} udp sport {port} '
                             f"{fam.nft} saddr set {public}{sport} counter", article))
    return rules
