"""Read the current network namespace into KernelFacts (pyroute2, `nft -j`, /proc/sys)."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
from socket import AF_INET
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]

from sheer.net.facts import IfAddr, KernelFacts, RouteFact, RuleFact

RTN_UNICAST, RTN_LOCAL = 1, 2


def gather() -> KernelFacts:
    with IPRoute() as ipr:
        names = {link["index"]: link.get("ifname") for link in ipr.get_links()}
        addresses = tuple(IfAddr(names.get(a["index"], str(a["index"])),
                                 f"{a.get('address')}/{a['prefixlen']}")
                          for a in ipr.get_addr(family=AF_INET))
        routes = tuple(route_fact(r, names) for r in ipr.get_routes(family=AF_INET)
                       if r["type"] in (RTN_UNICAST, RTN_LOCAL))
        rules = tuple(rule_fact(r) for r in ipr.get_rules(family=AF_INET))
    devs = sorted({a.dev for a in addresses})
    keys = ["net.ipv4.ip_forward", "net.ipv4.udp_early_demux", "net.ipv4.conf.all.rp_filter",
            *(f"net.ipv4.conf.{d}.rp_filter" for d in devs)]
    sysctls = {k: v for k in keys if (v := read_sysctl(k)) is not None}
    return KernelFacts(addresses, routes, rules, act_nat(), sysctls, nft_tables())


def route_fact(r: Any, names: dict[int, str]) -> RouteFact:
    dst = f"{r.get('dst') or '0.0.0.0'}/{r['dst_len']}"
    oif = r.get("oif")
    return RouteFact(dst, names.get(oif) if oif else None, r.get("gateway"), r.get("table") or r["table"],
                     "local" if r["type"] == RTN_LOCAL else "unicast")


def rule_fact(r: Any) -> RuleFact:
    proto = {6: "tcp", 17: "udp"}.get(r.get("ip_proto") or 0)
    sport = r.get("sport_range")
    src = r.get("src")
    return RuleFact(r.get("priority") or 0, r.get("table") or r["table"], r.get("fwmark"),
                    f"{src}" if src and r["src_len"] == 32 else (f"{src}/{r['src_len']}" if src else None),
                    proto, int(str(sport).split(":")[0]) if sport else None)


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
    if os.path.exists("/sys/module/act_nat"):
        return True
    base = f"/lib/modules/{platform.release()}"
    for name in ("modules.builtin", "modules.dep"):
        try:
            with open(os.path.join(base, name)) as f:
                if "act_nat.ko" in f.read():
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


def netns_id() -> int:
    return os.stat("/proc/self/ns/net").st_ino


SO_NETNS_COOKIE = 71


def netns_cookie() -> str:
    """This network namespace's identity for apply records. Inode numbers of deleted namespaces
    are reused, so a record keyed by inode could be picked up by an unrelated new namespace; the
    kernel's netns cookie (SO_NETNS_COOKIE, Linux 5.14+) is never reused while the system runs."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            return f"c{int.from_bytes(probe.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), 'little')}"
    except OSError:
        return f"i{netns_id()}"


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
