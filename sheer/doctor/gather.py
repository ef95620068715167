"""Gather what `sheer doctor` checks, in the current network namespace. Reads only: `nft -j`, `ip -j`,
/proc/sys, /proc/self/status. Probes (ICMP, TCP, UDP, one transparent TCP connection) go only to the
config's upstreams and gateways, and only when allowed (see `probes_allowed`)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from ipaddress import IPv4Address, ip_address
from typing import Any

from sheer.core import announce as core_announce
from sheer.doctor.needs import Needs
from sheer.doctor.probes import icmp_echo, neighbour, tcp_connect, udp_probe
from sheer.doctor.state import (
    BgpProtocol,
    BirdState,
    NextHop,
    Privileges,
    Probe,
    RouteGet,
    State,
    TransparentProbe,
    nft_rules,
)
from sheer.net import announce, fastpath_state, inspect, record
from sheer.net.facts import KernelFacts
from sheer.net.items import BirdFragment
from sheer.net.plan import is_ip, is_ipv4

DOC_CLIENT = "198.51.100.1"      # TEST-NET-2: a client address no real client has (probes, route lookups)
DOC_CLIENT6 = "2001:db8::c1"     # the IPv6 documentation prefix, for the same
LEAVES = ("rp_filter", "src_valid_mark", "accept_local")


def _run(*cmd: str, timeout: float = 5) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None


def sysctls(facts: KernelFacts) -> dict[str, str]:
    devs = sorted({a.dev for a in facts.addresses} | {"all"})
    keys = ["net.ipv4.ip_forward", "net.ipv4.udp_early_demux", "net.netfilter.nf_conntrack_count",
            *(f"net.ipv4.conf.{d}.{leaf}" for d in devs for leaf in LEAVES)]
    return {k: v for k in keys if (v := inspect.read_sysctl(k)) is not None}


def ruleset() -> tuple[tuple[Mapping[str, Any], ...], str | None]:
    """The ruleset, or () and why it could not be read (the checks then say so instead of "ok")."""
    res = _run("nft", "-j", "list", "ruleset")
    if res is None:
        return (), "`nft -j list ruleset` did not run (is nftables installed?)"
    if res.returncode != 0:
        return (), f"`nft -j list ruleset` failed: {res.stderr.strip() or f'exit {res.returncode}'}"
    try:
        return tuple(json.loads(res.stdout or '{"nftables": []}').get("nftables", [])), None
    except json.JSONDecodeError as e:
        return (), f"`nft -j list ruleset` printed what is not JSON ({e})"


def legacy_tables(path: str = "/proc/net/ip_tables_names") -> tuple[str, ...]:
    try:
        with open(path) as f:
            return tuple(f.read().split())
    except OSError:
        return ()


def tc_egress(devs: list[str]) -> dict[str, tuple[Mapping[str, Any], ...]]:
    out: dict[str, tuple[Mapping[str, Any], ...]] = {}
    for dev in devs:
        res = _run("tc", "-j", "-s", "filter", "show", "dev", dev, "egress")
        if res and res.returncode == 0 and res.stdout.strip():
            try:
                out[dev] = tuple(json.loads(res.stdout))
            except json.JSONDecodeError:
                continue
    return out


def privileges(transparent_error: str | None) -> Privileges:
    caps = {"CapEff": 0, "CapBnd": 0}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in caps:
                caps[key] = int(value.strip(), 16)
    return Privileges(os.geteuid(), caps["CapEff"], caps["CapBnd"], transparent_error)


def probes_allowed(n: Needs, explicit: bool) -> bool:
    """Probes go out when asked (--probe), in a network namespace other than the root one (the lab),
    or when every target is a loopback address."""
    if explicit or not inspect.in_root_netns():
        return True
    return all(is_ipv4(h) and IPv4Address(h).is_loopback for h in n.upstream_hosts)


# --- probes ----------------------------------------------------------------------------------

def reachability(n: Needs, facts: KernelFacts) -> tuple[Probe, ...]:
    out: list[Probe] = []
    hosts = [h for h in n.upstream_hosts if is_ip(h)]
    for host in hosts:
        out.append(Probe(host, "icmp", None, *_echo(host)))
    seen: set[tuple[str, str, int]] = set()
    for svc in (*n.transparent, *n.dsr):
        for u in svc.upstreams:
            key = (svc.proto, u.host, u.port)
            if key in seen or not is_ip(u.host):
                continue
            seen.add(key)
            if svc.proto == "tcp":
                ok_tcp, detail = tcp_connect(u.host, u.port)
                out.append(Probe(u.host, "tcp", u.port, ok_tcp, detail))
            else:
                ok_udp, detail = udp_probe(u.host, u.port)
                out.append(Probe(u.host, "udp", u.port, ok_udp, detail))
    # the gateway towards the clients, of each family the listeners serve
    clients = [n.client] if n.client else ([DOC_CLIENT6 if ":" in h else DOC_CLIENT for h in hosts]
                                            or [DOC_CLIENT])
    for client in dict.fromkeys(clients):
        route = facts.route_to(client)
        if route and route.via:
            # a link-local gateway (IPv6 routers announce theirs) is reached through its interface
            scoped = f"{route.via}%{route.dev}" if route.via.startswith("fe80:") and route.dev else route.via
            out.append(Probe(route.via, "icmp", None, *_echo(scoped), "gateway"))
    return tuple(out)


def _echo(host: str) -> tuple[bool, str]:
    """An echo, and when it goes unanswered the neighbour table's state: on a connected network, did
    `host` answer ARP (IPv4) or neighbour solicitation (IPv6) at all?"""
    ok, detail = icmp_echo(host)
    if not ok and (state := neighbour(host)) is not None:
        detail += f"; neighbour table: {state}" + (" (no answer to " + ("neighbour solicitation"
                                                                      if ":" in host else "ARP") + ")"
                                                   if state in ("FAILED", "INCOMPLETE") else "")
    return ok, detail


def mark_counters(rules: tuple[Mapping[str, Any], ...]) -> dict[str, int]:
    return {r.id: r.packets or 0 for r in nft_rules(rules)
            if r.hook == "prerouting" and r.mark_set() is not None}


def transparent_probe(n: Needs) -> TransparentProbe | None:
    target = next(((u.host, u.port) for svc in n.transparent if svc.proto == "tcp" for u in svc.upstreams
                   if is_ip(u.host)), None)
    if target is None:
        return None
    src = n.client or (DOC_CLIENT6 if ":" in target[0] else DOC_CLIENT)
    if (":" in src) != (":" in target[0]):
        return None                   # --client of the other family: nothing to probe this way
    before = mark_counters(ruleset()[0])
    ok, detail = tcp_connect(*target, timeout=2.0, source=src)
    return TransparentProbe(src, target[0], target[1], ok, detail, before, mark_counters(ruleset()[0]))


# --- upstream role ---------------------------------------------------------------------------

def routes_back(n: Needs) -> tuple[RouteGet, ...]:
    host = n.options.host
    if not host:
        return ()
    client = n.client or (DOC_CLIENT6 if ":" in host else DOC_CLIENT)
    out: list[RouteGet] = []
    ports = dict.fromkeys((svc.proto, u.port) for svc in (*n.transparent, *n.dsr) for u in svc.upstreams
                          if u.host == host)
    for proto, port in ports:
        res = _run("ip", "-j", "route", "get", client, "from", host, "ipproto", proto, "sport", str(port))
        if res is None or res.returncode != 0:
            out.append(RouteGet(client, host, proto, port, None, None,
                                (res.stderr.strip() if res else "ip not found") or "no route"))
            continue
        got = json.loads(res.stdout)[0]
        out.append(RouteGet(client, host, proto, port, got.get("gateway"), got.get("dev")))
    return tuple(out)


def _lladdr(address: str) -> str | None:
    """The link-layer address this namespace's neighbour table has for `address`. When it has none
    yet, one datagram to the discard port makes the kernel resolve it (a probe to a gateway, sent only
    where probes are allowed: next_hop is asked only outside the root namespace)."""
    for attempt in range(6):
        res = _run("ip", "-j", "neigh", "show", address)
        try:
            entries = json.loads(res.stdout) if res and res.returncode == 0 and res.stdout.strip() else []
        except json.JSONDecodeError:
            return None
        found = next((str(e["lladdr"]) for e in entries if e.get("lladdr")), None)
        if found or inspect.in_root_netns():
            return found
        if attempt == 0:
            fam = socket.AF_INET6 if ":" in address else socket.AF_INET
            with socket.socket(fam, socket.SOCK_DGRAM) as s, contextlib.suppress(OSError):
                s.sendto(b"", (address, 9))
        time.sleep(0.1)
    return None


def next_hop(address: str) -> NextHop | None:
    """The named network namespace on this host holding `address` (the lab's return router), if any:
    its sysctls and its nft ruleset. Several namespaces may hold it (two labs on one machine): the one
    whose interface has the link-layer address our neighbour table knows for it (ARP, or neighbour
    discovery for IPv6) is the one we talk to."""
    lladdr = _lladdr(address)
    here = record.netns_id()
    try:
        names = sorted(os.listdir("/run/netns"))
    except OSError:
        return None
    for name in names:
        try:
            if os.stat(os.path.join("/run/netns", name)).st_ino == here:
                continue
        except OSError:
            continue
        res = _run("ip", "-n", name, "-j", "addr", "show")
        if res is None or res.returncode != 0:
            continue
        for link in json.loads(res.stdout or "[]"):
            if lladdr and link.get("address") != lladdr:
                continue
            if any(_same_address(a.get("local"), address) for a in link.get("addr_info", [])):
                dev = link.get("ifname")
                keys = ["net.ipv4.ip_forward", "net.ipv4.conf.all.rp_filter",
                        f"net.ipv4.conf.{dev}.rp_filter", "net.ipv6.conf.all.forwarding"]
                got = _run("ip", "netns", "exec", name, "sysctl", *keys)
                values = dict(line.split(" = ", 1) for line in (got.stdout if got else "").splitlines()
                              if " = " in line)
                nft = _run("ip", "netns", "exec", name, "nft", "-j", "list", "ruleset")
                try:
                    rules = (tuple(json.loads(nft.stdout or '{"nftables": []}').get("nftables", []))
                             if nft and nft.returncode == 0 else None)
                except json.JSONDecodeError:
                    rules = None
                return NextHop(address, name, dev, values, rules, neighbour(address))
    return None


def _same_address(a: Any, b: str) -> bool:
    try:
        return ip_address(str(a)) == ip_address(b)
    except ValueError:
        return False


def bird_state(n: Needs) -> BirdState | None:
    """Ask the local BIRD what it runs and exports, and read the VIPs' devices (reads only)."""
    fragment = next((i for i in n.plan.items if isinstance(i, BirdFragment)), None)
    if not n.announce or fragment is None:
        return None
    found, error = announce.protocols(fragment.socket)
    protocols = None if found is None else tuple(BgpProtocol(p.name, p.proto, p.state, p.info) for p in found)
    devices = {vip: _link_state(core_announce.device(vip)) for vip in n.announce}
    exported: dict[tuple[str, str], bool | None] = {}
    for p in protocols or ():
        if p.proto == "BGP" and p.info == "Established":
            for vip in n.announce:
                exported[(vip, p.name)] = announce.exported(fragment.socket, p.name, f"{vip}/32")[0]
    return BirdState(fragment.socket, protocols, error, announce.read_text(fragment.path), devices, exported)


def _link_state(dev: str) -> str:
    """"up", "down" or "missing", from /sys/class/net (this network namespace's)."""
    try:
        with open(f"/sys/class/net/{dev}/flags") as handle:
            return "up" if int(handle.read().strip(), 16) & 0x1 else "down"
    except (OSError, ValueError):
        return "missing"


def gather(n: Needs, facts: KernelFacts, explicit_probe: bool,
           transparent_error: Callable[[], str | None]) -> State:
    facts = replace(facts, sysctls={**facts.sysctls, **sysctls(facts)})
    rules, nft_error = ruleset()
    state = State(facts, rules, legacy_tables(), legacy_tables("/proc/net/ip6_tables_names"),
                  tc_egress([n.public_if]) if n.public_if and facts.act_nat else {},
                  privileges(transparent_error()) if n.role == "proxy" else None, nft_error=nft_error,
                  feeders=tuple(fastpath_state.feeders()) if n.dsr else (), bird=bird_state(n))
    if n.role == "upstream":
        back = routes_back(n)
        gateway = next((r.gateway for r in back if r.proto == "udp" and r.gateway), None)
        hop = next_hop(gateway) if gateway and n.options.dsr == "origin" else None
        return replace(state, routes_back=back, next_hop=hop)
    if not probes_allowed(n, explicit_probe):
        return state
    tp = transparent_probe(n) if state.privileges and not state.privileges.transparent_error else None
    return replace(state, probes=reachability(n, facts), transparent_probe=tp, probed=True)
