"""DSR with router NAT on the proxy (forwarding, the stateless rewrite of the replies, early demux), and
source NAT that would hide the client from the upstreams."""

from __future__ import annotations

from sheer.doctor.findings import Finding, unknown_sysctl, unread
from sheer.doctor.needs import Needs
from sheer.doctor.state import NftRuleView, State, nft_rules, value_contains
from sheer.net.items import NftTable, TcNat
from sheer.net.plan import is_ip, is_ipv4
from sheer.net.plan.family import V4, Family, families, version_of


def _vip(n: Needs, s: State, version: int = 4) -> str | None:
    """The public address of the family `version` (the DSR upstreams' family answers from it)."""
    if n.options.vip and version_of(n.options.vip) == version:
        return n.options.vip
    for svc in n.dsr:
        if not svc.listen.is_wildcard and svc.listen.family == version:
            return svc.listen.host
    addrs = [a for a in s.facts.addresses
             if a.dev == n.public_if and a.family == version and not a.link_local]
    return str(addrs[0].interface.ip) if addrs else None


def rewrites(s: State, host: str, vip: str, hooks: tuple[str, ...]) -> list[NftRuleView]:
    found = []
    for r in nft_rules(s.ruleset):
        if r.saddr_set() != vip or (r.hook not in hooks and r.family != "netdev"):
            continue
        scopes = [value_contains(right, host) for what, op, right in r.matches()
                  if what in ("ip saddr", "ip6 saddr") and op == "=="]
        if all(x is not False for x in scopes):
            found.append(r)
    return found


def _forwarding(s: State, fam: Family) -> list[Finding]:
    key = fam.forwarding
    name = "ip_forward" if fam is V4 else "IPv6 forwarding"
    forward = s.sysctl(key)
    if forward is None:
        return [unknown_sysctl(name, key)]
    if forward != "1":
        return [Finding(name, "problem", f"router NAT forwards the upstreams' {fam} replies, but "
                        "forwarding is off: they are dropped here", (f"{key} = {forward}",),
                        (f"sysctl -w {key}=1",))]
    return [Finding(name, "ok", f"{fam} forwarding is on (router NAT)", (f"{key} = 1",))]


def tc_rewrites(s: State, host: str, vip: str) -> bool:
    import json
    return any('"nat"' in (t := json.dumps(f)) and host in t and vip in t
               for filters in s.tc_egress.values() for f in filters)


def router_nat(n: Needs, s: State) -> list[Finding]:
    if n.role != "proxy" or n.dsr_mode != "router":
        return []
    out: list[Finding] = []
    hosts = [u for svc in n.dsr for u in svc.upstreams if is_ip(u.host)]
    for fam in families(u.host for u in hosts) or [V4]:
        out.extend(_forwarding(s, fam))
    out.extend(unread("stateless NAT", s))
    for u in hosts if s.nft_error is None else ():
        vip = _vip(n, s, version_of(u.host) or 4)
        rules = rewrites(s, u.host, vip, ("postrouting", "output")) if vip else []
        if rules:
            out.append(Finding("stateless NAT", "ok", f"replies from {u.name} are rewritten to {vip}",
                               tuple(r.text() for r in rules)))
        elif vip and tc_rewrites(s, u.host, vip):
            out.append(Finding("stateless NAT", "ok",
                               f"replies from {u.name} are rewritten to {vip} (tc nat)"))
        else:
            article = [c for i in n.plan.items if isinstance(i, (TcNat, NftTable)) for c in i.commands()
                       if f"src {u.host}/32" in c]
            out.append(Finding("stateless NAT", "problem", f"no stateless rewrite of replies from {u.name} "
                               f"to {vip or '(unknown VIP: pass --vip)'}: clients get answers from the "
                               "upstream's address and drop them",
                               ("nft ruleset and tc egress filters: no such rewrite",),
                               (n.net_apply(), *article)))
    demux = s.sysctl("net.ipv4.udp_early_demux")
    if demux is None:
        out.append(unknown_sysctl("udp early demux", "net.ipv4.udp_early_demux"))
    elif demux == "1":
        out.append(Finding("udp early demux", "warning", "udp_early_demux=1: a sender that keeps a connected "
                           "UDP socket bound to the client's ip:port (nginx does, per datagram) gets the "
                           "forwarded reply attached to it and ip_forward() drops it (~10% loss, collapse "
                           "under load); sheer's raw DSR sender keeps no such socket and is immune",
                           ("net.ipv4.udp_early_demux = 1",), ("sysctl -w net.ipv4.udp_early_demux=0",)))
    else:
        out.append(Finding("udp early demux", "ok", "udp_early_demux is off: forwarded replies cannot be "
                           "attached to a sender's socket", (f"net.ipv4.udp_early_demux = {demux}",)))
    out.append(Finding("act_nat", "ok", "tc act_nat is available: the article's `tc ... action nat` works"
                       if s.facts.act_nat else "tc act_nat is missing on this kernel: the article's `tc ... "
                       "action nat` fails; sheer net rewrites with nftables instead"))
    return out


def _catches(n: Needs, s: State, r: NftRuleView, dev: str | None, host: str) -> bool | None:
    """Whether a source-NAT rule matches a packet from a transparent socket to `host` via `dev`."""
    verdict: bool | None = True
    for what, op, right in r.matches():
        if what == "oifname":
            hit = value_contains(right, dev) if dev else None
        elif what == "iifname":
            hit = False                        # locally generated: no input interface
        elif what == "ip daddr":
            hit = value_contains(right, host)
        elif what == "ip saddr":
            hit = value_contains(right, n.client) if n.client else (True if op == "!=" else None)
            if hit is not None and not n.client:
                op = "=="
        else:
            hit = None
        if hit is not None and op == "!=":
            hit = not hit
        if hit is False:
            return False
        if hit is None:
            verdict = None
    return verdict


def stray_nat(n: Needs, s: State) -> list[Finding]:
    if n.role != "proxy" or not (n.transparent or n.dsr):
        return []
    name = "stray rules"
    out: list[Finding] = unread(name, s)
    snat = [r for r in nft_rules(s.ruleset) if r.source_nat() and r.hook in ("postrouting", "output")]
    targets = [(r.dev if r else None, h) for h in n.upstream_hosts if is_ipv4(h)
               for r in [s.facts.route_to(h)]]
    for r in snat:
        verdicts = [_catches(n, s, r, dev, host) for dev, host in targets]
        fix = (f"nft delete rule {r.family} {r.table} {r.chain} handle {r.handle}",
               "# or narrow it so it leaves the upstream-bound traffic alone (e.g. `oifname != DEV`)")
        if any(v is True for v in verdicts):
            out.append(Finding(name, "problem", f"a {r.source_nat()} rule rewrites the source of "
                               "upstream-bound traffic: the upstreams see this proxy, not the client",
                               (r.text(),), fix))
        elif any(v is None for v in verdicts):
            out.append(Finding(name, "warning", f"a {r.source_nat()} rule may catch upstream-bound traffic",
                               (r.text(),), fix))
    if "nat" in s.legacy_tables:
        out.append(Finding(name, "warning", "the legacy iptables nat table is loaded: sheer reads only "
                           "nftables (iptables-nft included)", ("/proc/net/ip_tables_names: nat",),
                           (("iptables-legacy -t nat -S POSTROUTING   # look for MASQUERADE/SNAT towards the "
                            "upstreams"),)))
    if not out and s.nft_error is None:
        out.append(Finding(name, "ok", "no masquerade or SNAT catches the upstream-bound traffic",
                           (f"{len(snat)} source-NAT rule(s) in the nft ruleset",)))
    return out
