"""`sheer doctor` for the DSR fast path: which path each DSR listener takes and why, whether the
kernel can forward what the fast path rewrites (ip_forward, the forward hook's drops), who feeds
the table, and what conntrack costs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sheer.core import fastpath as core
from sheer.doctor.findings import Finding
from sheer.doctor.needs import Needs
from sheer.doctor.state import State, nft_rules
from sheer.net.fastpath import FpService, NftFastPath, describe
from sheer.net.plan.family import V4, families

NAME = "fast path"


def fastpath(n: Needs, s: State) -> list[Finding]:
    if n.role != "proxy" or not n.dsr:
        return []
    if s.nft_error:
        return [Finding(NAME, "warning", "not checked: the nft ruleset could not be read", (s.nft_error,))]
    planned = next((i for i in n.plan.items if isinstance(i, NftFastPath)), None)
    steering = _installed(s.ruleset)
    out: list[Finding] = []
    kernel = False
    for service in n.dsr:
        server = service.stream
        name = str(service.listen)
        method = core.kernel_method(server.upstream) if server and server.upstream else "no upstream"
        fp = next((f for f in planned.services if f.listen == name), None) if planned else None
        if isinstance(method, str):
            out.append(Finding(NAME, "ok", f"{name}: user-space path: {method}"))
        elif fp is None:
            why = next((note for note in n.plan.notes if note.startswith(name)),
                       "the plan has no fast path for it")
            out.append(Finding(NAME, "ok", f"{name}: user-space path ({why})"))
        elif fp.map not in steering:
            summary = (f"{name}: user-space path: the kernel fast path is not installed (it would steer "
                       f"{fp.vip}:{fp.port} in the kernel: {describe(fp)})")
            out.append(Finding(NAME, "warning", summary, (), (n.net_apply(),)))
        else:
            kernel = True
            out.append(_steered(n, s, name, fp, steering[fp.map], planned.mtu if planned else 1500))
    if kernel:
        out += _forwarding(n, s)
    return out


def _steered(n: Needs, s: State, name: str, fp: FpService, found: tuple[int, str], mtu: int) -> Finding:
    entries, rule = found
    evidence = [f"steered by {rule}", f"map {fp.map}: {entries} entries"]
    if not s.feeders:
        return Finding(NAME, "warning", f"{name}: kernel fast path, but no running sheer feeds it: health "
                       "checks, reloads and API changes do not reach its table (a dead upstream keeps its "
                       "share)", tuple(evidence), (f"sheer -c {n.conf}",))
    if entries == 0:
        return Finding(NAME, "warning", f"{name}: kernel fast path with an empty table (no live upstream): "
                       "every datagram goes to the user-space path", tuple(evidence))
    evidence.append(f"fed by sheer's health checker (pid {', '.join(map(str, s.feeders))})")
    return Finding(NAME, "ok", f"{name}: kernel fast path: nft netdev ingress steers {fp.vip}:{fp.port} "
                   f"({describe(fp)}); fragments, IP options and datagrams over {mtu} bytes reach the "
                   "user-space path", tuple(evidence))


def _installed(ruleset: tuple[Mapping[str, Any], ...]) -> dict[str, tuple[int, str]]:
    """Map name -> (entries, the rule using it) for each map `netdev sheer`'s ingress chain steers by."""
    maps = {m["name"]: len(m.get("elem", [])) for entry in ruleset if (m := entry.get("map"))
            and (m.get("family"), m.get("table")) == ("netdev", "sheer")}
    found = {}
    for rule in nft_rules(ruleset):
        if (rule.family, rule.table, rule.chain) == ("netdev", "sheer", "ingress"):
            text = json.dumps(rule.expr)
            found.update({name: (count, rule.id) for name, count in maps.items() if f'"@{name}"' in text})
    return found


def _forwarding(n: Needs, s: State) -> list[Finding]:
    out = []
    for fam in families(u.host for svc in n.dsr for u in svc.upstreams) or [V4]:
        if s.sysctl(fam.forwarding) != "1" and n.dsr_mode != "router":   # router NAT's check says it
            out.append(Finding("ip_forward", "problem", f"the fast path rewrites {fam} client datagrams for "
                               "forwarding, but forwarding is off: they are dropped",
                               (f"{fam.forwarding} = 0",),
                               (f"sysctl -w {fam.forwarding}=1", n.net_apply())))
    drops = []
    for entry in s.ruleset:
        c = entry.get("chain")
        if c and c.get("hook") == "forward" and c.get("policy") == "drop":
            drops.append(f"{c['family']} {c['table']} {c['name']}: policy drop")
    for rule in nft_rules(s.ruleset):
        if rule.hook == "forward" and any("drop" in e for e in rule.expr):
            drops.append(rule.text() + " drop")
    if "filter" in s.legacy_tables:
        drops.append("the legacy iptables filter table is loaded: sheer cannot read its FORWARD chain "
                     "(`iptables-legacy -L FORWARD -v`)")
    if drops:
        devs = f'iifname "{n.public_if}" ' if n.public_if else ""
        fix = f"# before the drop, e.g.: nft insert rule <family> <table> <chain> {devs}meta l4proto udp " \
              "accept"
        out.append(Finding("forward drops", "warning", "something on the forward hook drops packets: the "
                           "fast path's datagrams (client -> upstream) and router NAT's replies are "
                           "forwarded and must be accepted there", tuple(drops), (fix,)))
    else:
        out.append(Finding("forward drops", "ok", "nothing on the forward hook drops packets"))
    count = s.sysctl("net.netfilter.nf_conntrack_count")
    notrack = any(any("notrack" in e for e in r.expr) for r in nft_rules(s.ruleset)
                  if (r.family, r.table) == ("ip", "sheer"))
    if count is not None and int(count) > 0 and not notrack:
        out.append(Finding("conntrack", "warning", f"conntrack holds {count} entries here and tracks every "
                           "client ip:port the fast path forwards; `sheer net apply` adds notrack rules for "
                           "them", (f"net.netfilter.nf_conntrack_count = {count}",), (n.net_apply(),)))
    elif notrack:
        out.append(Finding("conntrack", "ok", "the fast path's datagrams skip conntrack "
                           "(notrack, table ip sheer)"))
    return out
