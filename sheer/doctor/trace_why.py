"""Why a flow `sheer trace` followed stopped where it did, read from the namespace it stopped in, for
the packet's address family: IPv4 reads `ip rule`, `ip route` and ARP entries, IPv6 `ip -6 rule`,
`ip -6 route` and neighbour discovery entries; both read the nft ruleset (a mark rule of an `ip` table
marks IPv4 only, one of an `ip6` table IPv6 only, one of an `inet` table both).

Three stops are explained:
- a reply to the client arrived at a node and never left it (Method 1's proxy without its mark rule,
  `ip rule` or `local` route): what marks it there, where the mark leads, where the kernel routes it;
- a DSR reply (to the client's own ip:port) arrived at a node that should forward it: forwarding of
  its family there, and the nft rule rewriting its source to the VIP;
- a packet (the request, or a reply) left a node and was seen nowhere after: the neighbour entry of its
  next hop there (FAILED or INCOMPLETE: the next hop never answered ARP / neighbour solicitation).

The reading (`Reader`: a node's `ip -j ...` / `nft -j ...` output) is separate from the reasoning, so the
unit tests give recorded outputs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

from sheer.doctor.capture import Flow, Hop, Spot, _in
from sheer.doctor.state import nft_rules

Reader = Callable[[str, tuple[str, ...]], Any]      # (node, command) -> its JSON output, or None


def reader(where: list[Spot]) -> Reader:
    spots = {s.node: s for s in where}

    def read(node: str, cmd: tuple[str, ...]) -> Any:
        spot = spots.get(node)
        if spot is None:
            return None
        try:
            res = subprocess.run(_in(spot, *cmd), capture_output=True, text=True, check=False, timeout=10)
        except (FileNotFoundError, subprocess.TimeoutExpired):
            return None
        if res.returncode != 0:
            return None
        try:
            return json.loads(res.stdout) if res.stdout.strip() else []
        except json.JSONDecodeError:
            return None
    return read


def _six(address: str) -> bool:
    return ":" in address


def _ip(address: str, *args: str) -> tuple[str, ...]:
    return ("ip", *(("-6",) if _six(address) else ()), "-j", *args)


def _ip_text(address: str) -> str:
    return "ip -6" if _six(address) else "ip"


def explain(flow: Flow, read: Reader) -> list[str]:
    if flow.reached:
        return []
    last = flow.stopped_at or (flow.hops[-1] if flow.hops else None)
    if last is None:
        return []
    if last.packet.outgoing:
        return _request_stopped(last, read)
    if flow.stopped_at is None:
        return []
    if last.packet.dport == flow.client[1]:
        # the upstream answered the client's own ip:port (DSR): a reply to forward, not to deliver
        return _forward_stopped(last, flow.front[0], read)
    return _reply_stopped(last, read)


def _marks(ruleset: Any, six: bool) -> list[tuple[str, int]]:
    """(rule id, mark) of every prerouting rule of the family's tables (and inet's) that sets a mark."""
    if not isinstance(ruleset, Mapping):
        return []
    families = ("ip6", "inet") if six else ("ip", "inet")
    return [(r.id, mark) for r in nft_rules(tuple(ruleset.get("nftables", ())))
            if r.hook == "prerouting" and r.family in families and (mark := r.mark_set()) is not None]


def _mark_of(rule: Mapping[str, Any]) -> int | None:
    raw = rule.get("fwmark")
    try:
        return int(str(raw), 0) if raw is not None else None
    except ValueError:
        return None


def _reply_stopped(hop: Hop, read: Reader) -> list[str]:
    """A reply to the client's address arrived here and went no further."""
    p, node = hop.packet, hop.node
    ip = _ip_text(p.dst)
    fam = "IPv6" if _six(p.dst) else "IPv4"
    out: list[str] = []
    ruleset = read(node, ("nft", "-j", "list", "ruleset"))
    marks = _marks(ruleset, _six(p.dst))
    if ruleset is None:
        out.append(f"{node}: the nft ruleset could not be read (`nft -j list ruleset`)")
    elif not marks:
        table = "`ip6` or `inet`" if _six(p.dst) else "`ip` or `inet`"
        out.append(f"{node}: no prerouting rule of an {table} table sets a mark: {fam} replies to client "
                   "addresses are routed, not delivered to the transparent socket (Method 1 needs the "
                   "mark rule; `sheer net apply` adds it)")
    rules = read(node, _ip(p.dst, "rule")) or []
    for rule_id, mark in dict.fromkeys(marks):
        policy = [r for r in rules if _mark_of(r) == mark]
        if not policy:
            out.append(f"{node}: {rule_id} sets mark {mark:#x} but no `{ip} rule` sends fwmark {mark:#x} "
                       f"to a table (fix: {ip} rule add fwmark {mark} lookup 100)")
            continue
        table = str(policy[0].get("table"))
        routes = read(node, _ip(p.dst, "route", "show", "table", table)) or []
        anywhere = "::/0" if _six(p.dst) else "0.0.0.0/0"
        local = any(r.get("type") == "local" and r.get("dst") in ("default", anywhere) for r in routes)
        out.append(f"{node}: {rule_id} sets mark {mark:#x}; `{ip} rule` sends it to table {table}, which "
                   + ("holds `local " + anywhere + "`" if local else
                      f"has no `local {anywhere}` "
                      f"(fix: {ip} route add local {anywhere} dev lo table {table})"))
    got = read(node, _ip(p.dst, "route", "get", p.dst))
    if isinstance(got, list) and got:
        route = got[0]
        how = f"via {route['gateway']} " if route.get("gateway") else ""
        out.append(f"{node}: `{ip} route get {p.dst}` (unmarked): {route.get('type', 'unicast')} "
                   f"{how}dev {route.get('dev', '?')}")
    return out


def _forward_stopped(hop: Hop, vip: str, read: Reader) -> list[str]:
    """A DSR reply (to the client's ip:port) arrived here and was not forwarded: forwarding of its
    family, and the stateless rewrite of its source to the VIP (router NAT) in the nft ruleset."""
    p, node = hop.packet, hop.node
    out: list[str] = []
    key = "net.ipv6.conf.all.forwarding" if _six(p.dst) else "net.ipv4.ip_forward"
    conf = read(node, _ip(p.dst, "netconf", "show"))
    forwarding = next((c.get("forwarding") for c in conf or () if isinstance(c, Mapping)
                       and c.get("interface") == "all" and "forwarding" in c), None)
    if forwarding is not None:
        off = forwarding in (False, "off", 0)
        state = f"off: the reply is dropped here (fix: sysctl -w {key}=1)" if off else "on"
        out.append(f"{node}: {key} is {state}")
    ruleset = read(node, ("nft", "-j", "list", "ruleset"))
    if isinstance(ruleset, Mapping):
        rewrite = [r for r in nft_rules(tuple(ruleset.get("nftables", ()))) if r.saddr_set() == vip]
        out.append(f"{node}: " + (f"{rewrite[0].id} rewrites the source to {vip}" if rewrite else
                                  f"no nft rule rewrites the source to {vip} (router NAT's rewrite)"))
    return out


def _request_stopped(hop: Hop, read: Reader) -> list[str]:
    """The packet left this node and was seen nowhere after: did its next hop answer ARP / NDP?"""
    p, node = hop.packet, hop.node
    got = read(node, _ip(p.dst, "route", "get", p.dst))
    route = got[0] if isinstance(got, list) and got else {}
    nexthop = str(route.get("gateway") or p.dst)
    dev = str(route.get("dev") or hop.dev)
    entries = read(node, _ip(p.dst, "neigh", "show", nexthop, "dev", dev)) or []
    states = [s for e in entries if isinstance(e, Mapping) for s in e.get("state", ())]
    what = "neighbour discovery" if _six(p.dst) else "ARP"
    table = f"{_ip_text(p.dst)} neigh show {nexthop} dev {dev}"
    if not states:
        return [f"{node}: no {what} entry for the next hop {nexthop} on {dev} (`{table}`)"]
    state = states[0]
    silent = state in ("FAILED", "INCOMPLETE")
    return [f"{node}: the next hop {nexthop} on {dev} is {state} in the neighbour table (`{table}`)"
            + (f": it does not answer {what}" if silent else "")]
