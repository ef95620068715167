"""The kernel state each method needs, for the demo: `sheer net apply/revert` when sheer is the
proxy, or the article's commands (as nft, since act_nat is missing here) for the reference nginx."""

from __future__ import annotations

import sys
from pathlib import Path

from sheer.lab.errors import LabError
from sheer.lab.procs import netns_exec, run
from sheer.lab.topology import PREFIX, RR_INTERNAL, VIP, article

REF_TABLE = f"{PREFIX}_ref"


def _nft(netns: str, ruleset: str) -> None:
    run("ip", "netns", "exec", netns, "nft", "-f", "-", input=ruleset)


def reference_apply(method: str) -> None:
    topo = article()
    proxy = topo.node("proxy").netns
    if method == "transparency":
        # the article's MARK rule (tcp/80, and udp/53 for DNS) + fwmark 1 -> table 100 where
        # everything is local, so replies reach the transparent socket bound to the client address
        _nft(proxy, f"""table ip {REF_TABLE} {{
    chain prerouting {{
        type filter hook prerouting priority mangle;
        ip saddr 172.16.0.0/24 tcp sport 80 meta mark set 0x1
        ip saddr 172.16.0.0/24 udp sport 53 meta mark set 0x1
    }}
}}
""")
        netns_exec(proxy, "ip", "rule", "add", "fwmark", "1", "lookup", "100")
        netns_exec(proxy, "ip", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")
    elif method == "dsr-router":
        # replies are forwarded, not captured; nginx's connected UDP socket would attach them via
        # early demux and ip_forward() would drop them
        netns_exec(proxy, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.udp_early_demux=0")
        ups = ", ".join(str(n.address()) for n in topo.upstreams)
        _nft(proxy, f"""table ip {REF_TABLE} {{
    chain postrouting {{
        type filter hook postrouting priority srcnat;
        oifname "{PREFIX}-pub" ip saddr {{ {ups} }} udp sport 53 ip saddr set {VIP}
    }}
}}
""")
    elif method == "dsr-origin":
        for up in topo.upstreams:
            netns_exec(up.netns, "ip", "rule", "add", "ipproto", "udp", "sport", "53", "lookup", "100")
            netns_exec(up.netns, "ip", "route", "add", "default", "via", "172.16.0.254", "table", "100")
            _nft(up.netns, f"""table ip {REF_TABLE} {{
    chain output {{
        type filter hook output priority filter;
        ip saddr {up.address()} ip daddr != 172.16.0.0/24 udp sport 53 ip saddr set {VIP}
    }}
}}
""")


def reference_revert() -> None:
    topo = article()
    proxy = topo.node("proxy").netns
    netns_exec(proxy, "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv4.udp_early_demux=1")
    for node in (topo.node("proxy"), *topo.upstreams):
        netns_exec(node.netns, "nft", "delete", "table", "ip", REF_TABLE, check=False)
        while netns_exec(node.netns, "ip", "rule", "del", "lookup", "100", check=False).returncode == 0:
            pass
        netns_exec(node.netns, "ip", "route", "flush", "table", "100", check=False)


def _sheer_net(netns: str, verb: str, config: Path, *extra: str) -> None:
    res = netns_exec(netns, sys.executable, "-m", "sheer", "net", verb, "-c", str(config), *extra,
                     check=False)
    if res.returncode != 0:
        lines = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
        raise LabError(f"`sheer net {verb}` failed: {lines[-1] if lines else res.returncode}")


def sheer_apply(method: str, config: Path, *extra: str) -> None:
    """`extra`: more `sheer net apply` options for the proxy (`--fastpath off`, ...)."""
    topo = article()
    if method == "plain":
        return
    dsr = ("--dsr", method.removeprefix("dsr-")) if method.startswith("dsr-") else ()
    _sheer_net(topo.node("proxy").netns, "apply", config, *dsr, *extra)
    if method == "dsr-origin":
        # the lab's listen is a wildcard (the upstream cannot know the VIP) and the replies take the
        # return router, not the upstreams' default route through the proxy
        for up in topo.upstreams:
            _sheer_net(up.netns, "apply", config, "--role", "upstream", "--host", str(up.address()),
                       *dsr, "--vip", str(VIP), "--via", str(RR_INTERNAL))


def sheer_revert(method: str, config: Path) -> None:
    topo = article()
    if method == "plain":
        return
    if method == "dsr-origin":
        for up in topo.upstreams:
            netns_exec(up.netns, sys.executable, "-m", "sheer", "net", "revert", "-c", str(config),
                       "--role", "upstream", "--host", str(up.address()), check=False)
    netns_exec(topo.node("proxy").netns, sys.executable, "-m", "sheer", "net", "revert", "-c", str(config),
               check=False)
