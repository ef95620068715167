"""Read the current network namespace into KernelFacts (pyroute2, `nft -j`, /proc/sys)."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from socket import AF_INET, AF_INET6
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]

from sheer.net.facts import HookUser, IfAddr, KernelFacts, RouteFact, RuleFact
from sheer.net.record import netns_id

RTN_UNICAST, RTN_LOCAL = 1, 2


def gather() -> KernelFacts:
    with IPRoute() as ipr:
        links = ipr.get_links()
        names = {link["index"]: link.get("ifname") for link in links}
        mtus = {link.get("ifname"): link.get("mtu") or 1500 for link in links}
        xdp = tuple(HookUser(link.get("ifname"), "xdp", "program attached") for link in links if _xdp(link))
        # IPv4 first: what reads "the first address" of an interface gets its IPv4 one, as before IPv6
        addresses = tuple(IfAddr(names.get(a["index"], str(a["index"])),
                                 f"{a.get('address')}/{a['prefixlen']}")
                          for family in (AF_INET, AF_INET6) for a in ipr.get_addr(family=family))
        routes = tuple(route_fact(r, names) for family in (AF_INET, AF_INET6)
                       for r in ipr.get_routes(family=family)
                       if r["type"] in (RTN_UNICAST, RTN_LOCAL))
        rules = tuple(rule_fact(r) for family in (AF_INET, AF_INET6) for r in ipr.get_rules(family=family))
    devs = sorted({a.dev for a in addresses})
    keys = ["net.ipv4.ip_forward", "net.ipv4.udp_early_demux", "net.ipv4.conf.all.rp_filter",
            *(f"net.ipv4.conf.{d}.rp_filter" for d in devs),
            "net.ipv6.conf.all.forwarding", *(f"net.ipv6.conf.{d}.forwarding" for d in devs)]
    sysctls = {k: v for k in keys if (v := read_sysctl(k)) is not None}
    hooks = (*nft_ingress_chains(), *xdp, *(user for dev in devs if dev != "lo" for user in tc_ingress(dev)))
    tracked = int(read_sysctl("net.netfilter.nf_conntrack_count") or 0) > 0
    return KernelFacts(addresses, routes, rules, act_nat(), sysctls, nft_tables(), mtus, hooks, tracked,
                       fib_checks(_nft_text("list", "ruleset")),
                       kernel_module("dummy"))


def fib_checks(ruleset: str) -> tuple[str, ...]:
    """Chains (not sheer's) whose rules check `fib saddr`: nftables' reverse-path filter, the only
    kind IPv6 has (it has no rp_filter sysctl), e.g. `fib saddr . iif oif missing drop`."""
    found: list[str] = []
    table = chain = None
    for line in ruleset.splitlines():
        words = line.split()
        if words[:1] == ["table"] and len(words) >= 3:
            table = f"{words[1]} {words[2]}"
        elif words[:1] == ["chain"] and len(words) >= 2:
            chain = words[1]
        elif table and chain and "fib saddr" in line and not table.endswith(" sheer"):
            where = f"{table} {chain}"
            if where not in found:
                found.append(where)
    return tuple(found)


def _xdp(link: Any) -> bool:
    xdp = link.get_attr("IFLA_XDP")
    return bool(xdp is not None and xdp.get_attr("IFLA_XDP_ATTACHED"))


def nft_ingress_chains() -> tuple[HookUser, ...]:
    """Base chains on a netdev/inet ingress hook, except sheer's own fast path (`netdev sheer`).
    nft 1.0.6's JSON leaves out a chain's devices: they are read from the text listing."""
    prios = {(c["family"], c["table"], c["name"]): c.get("prio") for obj in _nft_json("list", "chains")
             if (c := obj.get("chain")) and c.get("hook") == "ingress"}
    if not prios:
        return ()
    found = []
    for (family, table, name), devs in _ingress_devices(_nft_text("list", "chains")).items():
        if (family, table) != ("netdev", "sheer") and (family, table, name) in prios:
            what = f"{family} {table} {name}"
            found += [HookUser(dev, "nft", what, prios[(family, table, name)]) for dev in devs]
    return tuple(found)


def _ingress_devices(text: str) -> dict[tuple[str, str, str], list[str]]:
    out: dict[tuple[str, str, str], list[str]] = {}
    table = chain = None
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["table"] and len(words) >= 3:
            table = (words[1], words[2])
        elif words[:1] == ["chain"] and len(words) >= 2:
            chain = words[1]
        elif table and chain and "hook ingress" in line:
            spec = line.split("hook ingress", 1)[1].split("priority")[0]     # device "x" | devices = { x, y }
            devs = [d for d in re.split(r'[\s,{}="]+', spec) if d and d not in ("device", "devices")]
            out[(table[0], table[1], chain)] = devs
    return out


def _nft_text(*args: str) -> str:
    try:
        res = subprocess.run(["nft", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return ""
    return res.stdout if res.returncode == 0 else ""


def tc_ingress(dev: str) -> tuple[HookUser, ...]:
    try:
        res = subprocess.run(["tc", "-j", "filter", "show", "dev", dev, "ingress"], capture_output=True,
                             text=True, check=False)
    except FileNotFoundError:
        return ()
    if res.returncode != 0 or not res.stdout.strip():
        return ()
    kinds = sorted({f.get("kind", "?") for f in json.loads(res.stdout) if f.get("kind")})
    return tuple(HookUser(dev, "tc", f"ingress filter {kind}") for kind in kinds)


def _nft_json(*args: str) -> list[dict[str, Any]]:
    try:
        res = subprocess.run(["nft", "-j", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return []
    if res.returncode != 0 or not res.stdout.strip():
        return []
    objects: list[dict[str, Any]] = json.loads(res.stdout).get("nftables", [])
    return objects


def route_fact(r: Any, names: dict[int, str]) -> RouteFact:
    dst = f"{r.get('dst') or ('::' if r['family'] == AF_INET6 else '0.0.0.0')}/{r['dst_len']}"
    oif = r.get("oif")
    return RouteFact(dst, names.get(oif) if oif else None, r.get("gateway"), r.get("table") or r["table"],
                     "local" if r["type"] == RTN_LOCAL else "unicast")


def rule_fact(r: Any) -> RuleFact:
    proto = {6: "tcp", 17: "udp"}.get(r.get("ip_proto") or 0)
    sport = r.get("sport_range")
    src = r.get("src")
    host_len = 128 if r["family"] == AF_INET6 else 32
    prefix = f"{src}" if src and r["src_len"] == host_len else (f"{src}/{r['src_len']}" if src else None)
    return RuleFact(r.get("priority") or 0, r.get("table") or r["table"], r.get("fwmark"), prefix,
                    proto, int(str(sport).split(":")[0]) if sport else None,
                    6 if r["family"] == AF_INET6 else 4)


def sysctl_path(key: str) -> str:
    from sheer.net.items import Sysctl
    return Sysctl(key, "").path


def read_sysctl(key: str) -> str | None:
    try:
        with open(sysctl_path(key)) as f:
            return f.read().strip()
    except OSError:
        return None


def act_nat() -> bool:
    """Whether tc's act_nat exists, without loading anything: loaded, built in, or installable."""
    return kernel_module("act_nat")


def kernel_module(name: str) -> bool:
    """Whether the kernel has module `name` without loading anything: loaded, built in, or installable."""
    if os.path.exists(f"/sys/module/{name}"):
        return True
    base = f"/lib/modules/{platform.release()}"
    for listing in ("modules.builtin", "modules.dep"):
        try:
            with open(os.path.join(base, listing)) as f:
                if f"/{name}.ko" in f.read():
                    return True
        except OSError:
            continue
    return False


def nft_tables() -> tuple[str, ...]:
    try:
        res = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return ()
    if res.returncode != 0:
        return ()
    found = json.loads(res.stdout).get("nftables", [])
    return tuple(f"{t['table']['family']} {t['table']['name']}" for t in found if "table" in t)


def in_root_netns() -> bool:
    """True unless this is provably another namespace: a named one (`ip netns`), or not PID 1's.
    When PID 1's cannot be read (a sandbox), an unnamed namespace counts as the root one."""
    here = netns_id()
    try:
        named = {os.stat(os.path.join("/run/netns", n)).st_ino for n in os.listdir("/run/netns")}
    except OSError:
        named = set()
    if here in named:
        return False
    try:
        return os.stat("/proc/1/ns/net").st_ino == here
    except OSError:
        return True
