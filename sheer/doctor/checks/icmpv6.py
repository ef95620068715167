"""ICMPv6 that IPv6 cannot do without: packet-too-big (type 2) and neighbour discovery (133-137).

IPv6 routers never fragment: where a path's MTU is smaller than a packet, the router drops it and sends
ICMPv6 packet-too-big to its source, which then sends smaller packets. A firewall that drops type 2
makes every transparent connection and every DSR datagram over the smallest MTU vanish without a
trace (a black hole: the handshake works, the first full-sized segment never arrives). Neighbour
discovery is IPv6's ARP: without neighbour solicitation and advertisement (135, 136) no neighbour
is reachable at all; router solicitation/advertisement and redirect (133, 134, 137) matter where
addresses or routes are learned from routers.

The check walks every base chain of the `ip6`, `inet` and `netdev` tables on each hook such a packet
crosses (neighbour discovery is never forwarded: not the forward hook), following jumps, with an
ICMPv6 packet of each type: which rule (or chain policy) drops it, certainly or perhaps (a match
sheer cannot evaluate, such as an address or `ct state invalid`: a packet-too-big about a flow
conntrack does not track, as sheer's notrack rules make the DSR fast path's, is `invalid`).
The same walk covers the return router's ruleset when doctor reads that network namespace."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sheer.doctor.findings import Finding, Status, unread
from sheer.doctor.needs import Needs
from sheer.doctor.state import NftRuleView, State, nft_rules, value_contains
from sheer.net.plan import is_ip
from sheer.net.plan.family import version_of

NAME = "ICMPv6"
TYPES: dict[int, str] = {2: "packet-too-big", 133: "nd-router-solicit", 134: "nd-router-advert",
                         135: "nd-neighbor-solicit", 136: "nd-neighbor-advert", 137: "nd-redirect"}
VITAL = (2, 135, 136)                    # dropping these is a problem; the others, a warning
HOOKS = ("ingress", "prerouting", "input", "forward", "output", "postrouting")
FAMILIES = ("ip6", "inet", "netdev")
ICMPV6 = {"ipv6-icmp", "icmpv6", "58"}
NOT_ICMPV6 = {"ip", "icmp", "tcp", "udp", "udplite", "sctp", "dccp", "esp", "ah", "comp", "igmp", "arp",
              "vlan", "gre"}


@dataclass(frozen=True, slots=True)
class Drop:
    """Who drops an ICMPv6 type on a hook: a rule or a chain's policy; `certain` False: perhaps."""

    icmp_type: int
    hook: str
    family: str
    table: str
    chain: str
    rule: NftRuleView | None             # None: the base chain's policy
    certain: bool

    @property
    def where(self) -> str:
        return self.rule.id if self.rule else f"{self.family} {self.table} {self.chain} (policy drop)"


def _covers(right: Any, values: set[str]) -> bool | None:
    """Whether an nft right-hand side covers one of `values` (names or numbers as text)."""
    if isinstance(right, Mapping) and "set" in right:
        return _any(_covers(v, values) for v in right["set"])
    if isinstance(right, list):
        return _any(_covers(v, values) for v in right)
    if isinstance(right, Mapping) and "range" in right:
        try:
            lo, hi = (int(v) for v in right["range"])
        except (TypeError, ValueError):
            return None
        return any(v.isdigit() and lo <= int(v) <= hi for v in values)
    if isinstance(right, str):
        return None if right.startswith("@") else right in values
    if isinstance(right, int):
        return str(right) in values
    return None


def _any(answers: Iterable[bool | None]) -> bool | None:
    seen = list(answers)
    if any(a is True for a in seen):
        return True
    return None if any(a is None for a in seen) else False


def _match(what: str, right: Any, icmp_type: int, devs: tuple[str, ...]) -> bool | None:
    """Whether `what == right` holds for an ICMPv6 packet of `icmp_type` (None: cannot tell)."""
    if what in ("l4proto", "ip6 nexthdr"):
        return _covers(right, ICMPV6)
    if what == "nfproto":
        return _covers(right, {"ipv6", "10"})
    if what == "protocol":
        return _covers(right, {"ip6", "ipv6", "34525"})
    if what == "icmpv6 type":
        return _covers(right, {TYPES[icmp_type], str(icmp_type)})
    if what in ("iifname", "oifname"):
        if not devs:
            return None
        return _any(value_contains(right, dev) for dev in devs)
    if what == "ct state":
        if icmp_type in (2,):
            # about a tracked flow: related; about one conntrack does not track (notrack): invalid
            related, invalid = _covers(right, {"related"}), _covers(right, {"invalid"})
            return True if related and invalid else (False if related is False and invalid is False else None)
        return _covers(right, {"untracked"})          # neighbour discovery is never tracked
    if what == "fib":
        return False          # a reverse-path check: an error from a router on the path passes it
    if what.split(" ")[0] in NOT_ICMPV6:
        return False                                  # a header this packet does not have
    return None


def _verdict(expr: tuple[Mapping[str, Any], ...]) -> tuple[str, str | None] | None:
    for e in expr:
        if "vmap" in e:     # a verdict map: it drops what one of its keys drops (perhaps this packet)
            return ("drop", None) if any(k in str(e["vmap"]) for k in ("'drop'", "'reject'")) else None
        for kind in ("accept", "drop", "reject", "return"):
            if kind in e:
                return ("drop" if kind == "reject" else kind), None
        for kind in ("jump", "goto"):
            if kind in e and isinstance(e[kind], Mapping):
                return kind, str(e[kind].get("target"))
    return None


def _verdict_text(rule: NftRuleView) -> str:
    verdict = _verdict(rule.expr)
    if verdict is None:
        return ""
    kind, target = verdict
    if kind == "drop" and any("reject" in e for e in rule.expr):
        return "reject"
    return f"{kind} {target}" if target else kind


def _limited(expr: tuple[Mapping[str, Any], ...]) -> bool:
    """A statement that lets only some packets through to the verdict (`limit`, `quota`), or a verdict
    map: whether this packet gets the drop, sheer cannot tell."""
    return any(k in e for e in expr for k in ("limit", "quota", "vmap"))


class _Walk:
    def __init__(self, ruleset: tuple[Mapping[str, Any], ...], icmp_type: int, devs: tuple[str, ...]
                 ) -> None:
        self.rules = nft_rules(ruleset)
        self.icmp_type = icmp_type
        self.devs = devs

    def rule_matches(self, rule: NftRuleView) -> bool | None:
        answers = []
        for what, op, right in rule.matches():
            hit = _match(what, right, self.icmp_type, self.devs)
            if hit is not None and op == "!=":
                hit = not hit
            answers.append(hit)
        if any(a is False for a in answers):
            return False
        return None if any(a is None for a in answers) or _limited(rule.expr) else True

    def chain(self, family: str, table: str, chain: str, sure: bool, depth: int = 0
              ) -> tuple[str, NftRuleView | None, bool]:
        """("accept" | "drop" | "through", the deciding rule, certain). `sure`: every rule before
        certainly let the packet come this far (no accept or return that perhaps applied)."""
        maybe: NftRuleView | None = None          # the first rule that perhaps dropped it
        for rule in (r for r in self.rules if (r.family, r.table, r.chain) == (family, table, chain)):
            hit = self.rule_matches(rule)
            verdict = _verdict(rule.expr)
            if hit is False or verdict is None:
                continue
            certain = sure and hit is True
            kind, target = verdict
            if kind in ("jump", "goto"):
                if not target or depth >= 16:
                    continue
                got, by, got_certain = self.chain(family, table, target, certain, depth + 1)
                if got == "drop" and got_certain:
                    return got, by, True
                if got == "accept" and got_certain:
                    return ("drop", maybe, False) if maybe else (got, by, True)
                if got == "drop":
                    maybe = maybe or by
                if got != "through" or not got_certain:
                    sure = False
                continue
            if kind == "drop":
                if certain:
                    return "drop", rule, True
                maybe = maybe or rule
            elif certain:                               # accept, or return to the calling chain
                return ("drop", maybe, False) if maybe else (
                    ("accept", rule, True) if kind == "accept" else ("through", None, sure))
            sure = False
        return ("drop", maybe, False) if maybe else ("through", None, sure)


def drops(ruleset: tuple[Mapping[str, Any], ...], devs: tuple[str, ...] = (),
          forwarded: bool = True) -> list[Drop]:
    """Every base chain that drops (or may drop) an ICMPv6 packet of a vital type; `forwarded` False:
    leave the forward hook out (a host that forwards none of these)."""
    found: list[Drop] = []
    bases = [c for entry in ruleset if (c := entry.get("chain")) and c.get("hook") in HOOKS
             and c.get("family") in FAMILIES]
    for icmp_type in TYPES:
        walk = _Walk(ruleset, icmp_type, devs)
        for c in bases:
            if c["hook"] == "forward" and (icmp_type != 2 or not forwarded):
                continue
            kind, rule, certain = walk.chain(c["family"], c["table"], c["name"], True)
            if kind == "drop":
                found.append(Drop(icmp_type, c["hook"], c["family"], c["table"], c["name"], rule, certain))
            elif kind == "through" and c.get("policy") == "drop":
                found.append(Drop(icmp_type, c["hook"], c["family"], c["table"], c["name"], None, certain))
    return found


def _findings(found: list[Drop], where: str, run: str = "") -> list[Finding]:
    """One finding per rule or policy, naming the types it drops and the exact fix."""
    by: dict[tuple[str, bool], list[Drop]] = {}
    for d in found:
        by.setdefault((d.where, d.certain), []).append(d)
    out = []
    for (place, certain), same in by.items():
        first = same[0]
        types = list(dict.fromkeys(d.icmp_type for d in same))
        names = ", ".join(TYPES[t] for t in types)
        vital = any(t in VITAL for t in types)
        status: Status = "problem" if certain and vital else "warning"
        verb = "drops" if certain else "may drop"
        why = []
        if 2 in types:
            why.append("IPv6 routers never fragment: where the path's MTU is smaller, packet-too-big is "
                       "the only way the sender learns it (without it, full-sized packets vanish: "
                       "connections stall after the handshake, large DSR datagrams are lost)")
        if 135 in types or 136 in types:
            why.append("without neighbour solicitation/advertisement no IPv6 neighbour is reachable")
        if set(types) & {133, 134, 137} and not why:
            why.append("router discovery and redirects matter where addresses or routes are learned")
        accept = f"icmpv6 type {{ {', '.join(TYPES[t] for t in types)} }} accept"
        c = f"{first.family} {first.table} {first.chain}"
        fix: tuple[str, ...]
        evidence: tuple[str, ...]
        if first.rule is not None:
            fix = (f"{run}nft insert rule {c} position {first.rule.handle} {accept}",
                   f"# or: {run}nft delete rule {c} handle {first.rule.handle}")
            evidence = (f"{first.rule.text()} {_verdict_text(first.rule)}",)
        else:
            fix = (f"{run}nft insert rule {c} {accept}",)
            evidence = (f"chain {c}: hook {first.hook}, policy drop, no rule before accepts them",)
        if not certain:
            evidence += (("a match sheer cannot evaluate for every packet (an address, an interface, "
                          "`ct state invalid`: packet-too-big about a flow conntrack does not track is "
                          "invalid) decides"),)
        hooks = ", ".join(dict.fromkeys(d.hook for d in same))
        out.append(Finding(NAME, status, f"{where}{place} {verb} ICMPv6 {names} ({hooks}): {'; '.join(why)}",
                           evidence, fix))
    return out


def _ipv6_here(n: Needs) -> bool:
    if n.role == "upstream":
        return bool(n.options.host) and version_of(n.options.host or "") == 6
    return any(version_of(u.host) == 6 for svc in (*n.transparent, *n.dsr) for u in svc.upstreams
               if is_ip(u.host))


def icmpv6(n: Needs, s: State) -> list[Finding]:
    """The host's nft ruleset (and the return router's, when doctor read its network namespace) lets
    ICMPv6 packet-too-big and neighbour discovery through."""
    if not (n.transparent or n.dsr) or not _ipv6_here(n):
        return []
    if blind := unread(NAME, s):
        return blind
    devs = tuple(a.dev for a in s.facts.addresses if a.dev != "lo" and a.family == 6 and not a.link_local)
    out = _findings(drops(s.ruleset, tuple(dict.fromkeys(devs))), "")
    if "filter" in s.legacy_tables6:
        out.append(Finding(NAME, "warning", "the legacy ip6tables filter table is loaded: sheer reads only "
                           "nftables; check that it accepts packet-too-big and neighbour discovery",
                           ("/proc/net/ip6_tables_names: filter",), ("ip6tables-legacy -S",)))
    hop = s.next_hop
    if hop is not None and hop.ruleset is not None:
        # the return router forwards the replies only: none of these crosses its forward hook towards
        # the upstreams (the replies' source is the VIP)
        run = f"ip netns exec {hop.netns} "
        found = drops(hop.ruleset, (hop.dev,) if hop.dev else (), forwarded=False)
        out += _findings(found, f"{hop.netns}: ", run)
    if not any(f.status != "ok" for f in out):
        read = "this host's nft ruleset" + (f" and {hop.netns}'s" if hop and hop.ruleset is not None else "")
        out.append(Finding(NAME, "ok", f"{read} let ICMPv6 packet-too-big and neighbour discovery through",
                           (f"{len(nft_rules(s.ruleset))} nft rule(s) walked on every hook",)))
    return out
