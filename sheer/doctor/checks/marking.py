"""Method 1 on the proxy: replies from the upstreams are marked, the mark is routed to a table where
everything is local, and the reverse-path filter lets them in."""

from __future__ import annotations

from sheer.doctor.checks.host import no_route
from sheer.doctor.findings import Cause, Finding, unknown_sysctl, unread
from sheer.doctor.needs import Needs
from sheer.doctor.state import NftRuleView, State, nft_rules
from sheer.net.items import NftTable, Rule, ip_cmd
from sheer.net.plan import is_ipv4
from sheer.net.plan.family import V4, Family, families


def _upstream_devs(n: Needs, s: State) -> list[str]:
    devs = [r.dev for h in n.upstream_hosts if is_ipv4(h) for r in [s.facts.route_to(h)] if r and r.dev]
    return list(dict.fromkeys(devs))


def reverse_path(n: Needs, s: State) -> list[Finding]:
    """Method 1 on the proxy: rp_filter 1 or 2 is harmless; src_valid_mark=1 makes the reverse-path
    lookup of a marked reply hit the local table, so its source looks local: a martian unless
    accept_local=1."""
    if n.role != "proxy" or not n.transparent:
        return []
    name = "rp_filter/src_valid_mark/accept_local"
    if s.sysctl("net.ipv4.conf.all.rp_filter") is None:
        return [unknown_sysctl(name, "net.ipv4.conf.all.rp_filter")]
    out: list[Finding] = []
    for dev in _upstream_devs(n, s):
        rp = max(v for v in s.conf(dev, "rp_filter") if v is not None)
        svm = any(s.conf(dev, "src_valid_mark"))
        accept = any(s.conf(dev, "accept_local"))
        evidence = ((f"{dev}: rp_filter {rp} (max of all/{dev}), src_valid_mark {int(svm)}, accept_local "
                    f"{int(accept)}"),)
        if svm and not accept:
            out.append(Finding(name, "problem", f"src_valid_mark=1 without accept_local=1 on {dev} breaks "
                               "Method 1: marked replies from the upstreams fail the reverse-path check "
                               "(their source routes to the local table) and are dropped", evidence,
                               (f"sysctl -w net.ipv4.conf.{dev}.accept_local=1",
                                ("# or: sysctl -w net.ipv4.conf.all.src_valid_mark=0 "
                                 f"net.ipv4.conf.{dev}.src_valid_mark=0"))))
        else:
            out.append(Finding(name, "ok", f"{dev}: replies pass the reverse-path check "
                               f"(rp_filter {rp} is harmless for Method 1)", evidence))
    return out


def _marking(s: State) -> list[NftRuleView]:
    return [r for r in nft_rules(s.ruleset) if r.hook == "prerouting" and r.mark_set() is not None]


def policy_routing(n: Needs, s: State) -> list[Finding]:
    """Per address family of the upstreams: IPv4 and IPv6 have separate rule lists and tables
    (`ip rule` / `ip -6 rule`), and a mark rule in a `table ip` marks IPv4 replies only, one in a
    `table ip6` IPv6 ones, one in a `table inet` both."""
    if n.role != "proxy" or not n.transparent:
        return []
    name = "policy routing"
    if blind := unread(name, s):
        return blind
    out: list[Finding] = []
    for fam in families(n.upstream_hosts) or [V4]:
        marking = [r for r in _marking(s) if r.family in (fam.nft, "inet")]
        if not marking:
            article = [c for i in n.plan.items if isinstance(i, NftTable) and i.family == fam.nft
                       for c in i.commands() if "MARK" in c]
            unmarked = Cause("no mark rule", f"no rule marks the upstreams' {_which(n, fam)}replies: they "
                             "are routed, not delivered to the transparent sockets (connections hang in "
                             "SYN-SENT)", (n.net_apply(),))
            out += [Finding(name, "problem", unmarked.summary,
                            (f"nft ruleset: no prerouting rule of a `{fam.nft}` or `inet` table sets a mark",
                             *(f"the article's form: {a}" for a in article)),
                            unmarked.fix, unmarked), *_mark_counters(n, s, [], unmarked)]
            continue
        out += _routes_for_marks(n, s, marking, fam)
        out.extend(_mark_counters(n, s, marking))
    return out


def _which(n: Needs, fam: Family) -> str:
    return f"{fam} " if len(families(n.upstream_hosts)) > 1 or fam.version == 6 else ""


def _routes_for_marks(n: Needs, s: State, marking: list[NftRuleView], fam: Family) -> list[Finding]:
    name = "policy routing"
    ip = ip_cmd(fam.version)
    anywhere = fam.anywhere
    out: list[Finding] = []
    planned = next((i for i in n.plan.items if isinstance(i, Rule) and i.fwmark is not None
                    and i.family == fam.version), None)
    for mark in sorted({m for r in marking if (m := r.mark_set()) is not None}):
        evidence = [r.text() for r in marking if r.mark_set() == mark]
        rules = [r for r in s.facts.rules_of(fam.version) if r.fwmark == mark]
        if not rules:
            # the table already holding `local 0.0.0.0/0` (the rule alone was lost), else the plan's
            tables = sorted(r.table for r in s.facts.routes if r.kind == "local" and r.dst == anywhere)
            table = tables[0] if tables else (n.plan.table if n.plan.mark == mark and n.plan.table else 100)
            prio = planned.priority if planned else 32765
            out.append(Finding(name, "problem", f"fwmark {mark:#x} is set but no `{ip} rule` sends it to a "
                               f"table: marked {_which(n, fam)}replies are routed, not delivered locally",
                               tuple(evidence),
                               (f"{ip} rule add fwmark {mark} lookup {table} priority {prio}",)))
            continue
        for rule in rules:
            evidence.append(f"{ip} rule: {rule.priority}: from all fwmark {mark:#x} lookup {rule.table}")
            local = any(r.table == rule.table and r.kind == "local" and r.dst == anywhere
                        for r in s.facts.routes)
            if not local:
                out.append(Finding(name, "problem", f"table {rule.table} has no `local {anywhere}` route: "
                                   f"marked {_which(n, fam)}replies are not delivered to the transparent "
                                   "sockets", tuple(evidence),
                                   (f"{ip} route add local {anywhere} dev lo table {rule.table}",)))
            else:
                out.append(Finding(name, "ok",
                                   f"fwmark {mark:#x} -> table {rule.table} (local {anywhere} dev lo)",
                                   tuple(evidence)))
    return out


def _mark_counters(n: Needs, s: State, marking: list[NftRuleView],
                   unmarked: Cause | None = None) -> list[Finding]:
    tp = s.transparent_probe
    if tp is None:
        return []
    name = "mark counters"
    ids = [r.id for r in marking]
    moved = sum(max(0, tp.after.get(i, 0) - tp.before.get(i, 0)) for i in ids if i in tp.before)
    evidence = (f"transparent probe {tp.src} -> {tp.dst}:{tp.port}: {tp.detail}",
                f"mark rule counters moved by {moved} packet(s)")
    if tp.connected and moved > 0:
        return [Finding(name, "ok", "a transparent connection was answered and its replies were marked",
                        evidence)]
    if tp.connected:
        return [Finding(name, "warning", "a transparent connection was answered but no mark rule counted it "
                        "(a rule without `counter`?)", evidence)]
    why = ("the replies were marked but not delivered: see the policy routing findings" if moved
           else "its replies never reached the mark rule: is the upstream's route back through this proxy?")
    unroutable = no_route(n, s)
    cause = unroutable if unroutable and s.facts.route_to(tp.dst) is None else unmarked
    return [Finding(name, "problem", f"a transparent connection from {tp.src} to {tp.dst}:{tp.port} got no "
                    f"answer; {why}", evidence,
                    (n.net_apply(),
                     f"# on {tp.dst}: sheer net apply -c {n.conf} --role upstream --host {tp.dst}"),
                    cause)]
