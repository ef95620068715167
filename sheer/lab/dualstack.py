"""`sheer lab up --ipv6`: the article's lab made dual-stack, IPv4 left exactly as it is.

Every node gets an IPv6 address beside its IPv4 one, the last IPv4 octet written as the last group
(192.168.99.10 -> fd00:99::10, 172.16.0.11 -> fd00:16::11), the upstreams an IPv6 default route via
the proxy, the return router IPv6 forwarding and the same filter as for IPv4 (only UDP from the VIP).
Addresses are added `nodad` (no duplicate address detection: usable at once). The witnesses are
restarted listening on both families. Turning IPv6 off again (`disable`) sets disable_ipv6, which
takes every IPv6 address and route with it, and restarts the witnesses as they were.
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Interface
from pathlib import Path

from sheer.lab import witness
from sheer.lab.procs import netns_exec, run, wait_for
from sheer.lab.topology import PREFIX, RR_NFT_TABLE, STATE_DIR, VIP, Iface, Node, Topology, v6_of

VIP6 = IPv6Address("fd00:99::10")
CLIENT6 = IPv6Address("fd00:99::1")
PROXY_INTERNAL6 = IPv6Address("fd00:16::1")
RR_INTERNAL6 = IPv6Address("fd00:16::254")
PREFIX_LEN = 64


def marker(state_dir: Path = STATE_DIR) -> Path:
    return state_dir / "ipv6"


def enabled(state_dir: Path = STATE_DIR) -> bool:
    return marker(state_dir).exists()


def iface6(iface: Iface) -> IPv6Interface:
    return IPv6Interface(f"{v6_of(iface.address.ip, iface.segment)}/{PREFIX_LEN}")


def address6(node: Node, segment: str | None = None) -> IPv6Address:
    for iface in node.ifaces:
        if segment is None or iface.segment == segment:
            return iface6(iface).ip
    raise KeyError(f"{node.name} has no {segment} address")


def sysctls(node: Node) -> tuple[tuple[str, str], ...]:
    forwarding = "1" if node.role == "router" else "0"
    return (("net.ipv6.conf.all.disable_ipv6", "0"), ("net.ipv6.conf.default.disable_ipv6", "0"),
            ("net.ipv6.conf.all.forwarding", forwarding))


def rr_ruleset6(table: str = RR_NFT_TABLE) -> str:
    """The return router's IPv6 filter: as for IPv4, only origin-NAT DSR replies from the VIP."""
    return f"""table ip6 {table} {{
    chain forward {{
        type filter hook forward priority filter; policy drop;
        iifname "{PREFIX}-int" oifname "{PREFIX}-pub" ip6 saddr {VIP6} meta l4proto udp counter accept
        counter drop
    }}
}}
"""


def enable(topo: Topology, state_dir: Path = STATE_DIR) -> None:
    """Add IPv6 to a built lab (idempotent: `replace` and a fresh nft table)."""
    for node in topo.nodes:
        # no duplicate address detection on the link-local addresses either: they (and their routes)
        # would appear a second later, in the middle of whatever a test compares
        netns_exec(node.netns, "sysctl", "-qw",
                   *(f"net.ipv6.conf.{i.name}.accept_dad=0" for i in node.ifaces))
        netns_exec(node.netns, "sysctl", "-qw", *(f"{k}={v}" for k, v in sysctls(node)))
        lines = [f"-6 addr replace {iface6(i)} dev {i.name} nodad" for i in node.ifaces]
        if node.role == "upstream":
            lines.append(f"-6 route replace default via {PROXY_INTERNAL6}")
        for line in lines:
            run("ip", "-n", node.netns, *line.split())
    for node in topo.nodes:
        wait_for(lambda n=node: "tentative" not in _addresses(n), 3.0,  # type: ignore[misc]
                 f"{node.name}'s IPv6 addresses")
    rr = topo.node("rr").netns
    run("ip", "netns", "exec", rr, "nft", "-f", "-",
        input=f"table ip6 {RR_NFT_TABLE}\ndelete table ip6 {RR_NFT_TABLE}\n" + rr_ruleset6())
    marker(state_dir).parent.mkdir(parents=True, exist_ok=True)
    marker(state_dir).write_text(f"IPv6 beside IPv4 (VIP {VIP} and {VIP6})\n")
    _restart_witnesses(topo, state_dir)


def disable(topo: Topology, state_dir: Path = STATE_DIR) -> None:
    """Back to the IPv4-only lab: disable_ipv6 removes every IPv6 address and route."""
    marker(state_dir).unlink(missing_ok=True)
    for node in topo.nodes:
        netns_exec(node.netns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                   "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.forwarding=0")
    netns_exec(topo.node("rr").netns, "nft", "delete", "table", "ip6", RR_NFT_TABLE, check=False)
    _restart_witnesses(topo, state_dir)


def problems(topo: Topology, state_dir: Path = STATE_DIR) -> list[str]:
    """What a dual-stack lab lacks (nothing when IPv6 was not asked for)."""
    if not enabled(state_dir):
        return []
    found = []
    for node in topo.nodes:
        have = netns_exec(node.netns, "ip", "-6", "-o", "addr", "show", check=False).stdout
        found += [f"{node.name}: {i.name} lacks {iface6(i)}" for i in node.ifaces
                  if f" {iface6(i)} " not in have]
    return found


def _restart_witnesses(topo: Topology, state_dir: Path) -> None:
    six = enabled(state_dir)
    for node in topo.upstreams:
        witness.stop(node, state_dir)
        witness.start(node, state_dir, str(address6(node)) if six else None)
    for node in topo.upstreams:
        wanted = witness.expected_listeners()
        wait_for(lambda n=node, w=wanted: _listening(n, w, six), 5.0,  # type: ignore[misc]
                 f"the witnesses of {node.name} to listen")


def _listening(node: Node, wanted: set[tuple[str, int]], six: bool) -> bool:
    out = netns_exec(node.netns, "ss", "-Hlntu", check=False).stdout
    v6 = {(f[0], int(f[4].rsplit(":", 1)[1])) for line in out.splitlines()
          if len(f := line.split()) >= 5 and f[4].startswith("[")}
    v4 = {(f[0], int(f[4].rsplit(":", 1)[1])) for line in out.splitlines()
          if len(f := line.split()) >= 5 and not f[4].startswith("[")}
    return wanted <= v4 and (not six or wanted <= v6)


def _addresses(node: Node) -> str:
    return netns_exec(node.netns, "ip", "-6", "addr", check=False).stdout
