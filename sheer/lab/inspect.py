"""What the lab looks like right now: health problems and a status report (from `ip -j`, `ss`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sheer.lab import dualstack, witness
from sheer.lab.procs import alive, cmdline, netns_exec, netns_list, netns_pids, read_pid, run
from sheer.lab.topology import COMMON_SYSCTLS, RR_NFT_TABLE, STATE_DIR, Node, Topology, article


def ip_json(netns: str, *args: str) -> list[dict[str, Any]]:
    out = run("ip", "-n", netns, "-j", *args).stdout.strip()
    return json.loads(out) if out else []


def listeners(netns: str) -> set[tuple[str, int]]:
    out = netns_exec(netns, "ss", "-Hlntu", check=False).stdout
    found: set[tuple[str, int]] = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[4].rsplit(":", 1)[-1].isdigit():
            found.add((fields[0], int(fields[4].rsplit(":", 1)[1])))
    return found


def addresses(netns: str) -> list[dict[str, Any]]:
    return [
        {
            "ifname": link["ifname"],
            "state": "UP" if "UP" in link.get("flags", []) else "DOWN",
            "addresses": [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                          if a.get("family") == "inet"],
        }
        for link in ip_json(netns, "addr", "show")
    ]


def routes(netns: str) -> list[str]:
    lines = []
    for r in ip_json(netns, "route", "show"):
        via = f" via {r['gateway']}" if "gateway" in r else ""
        hops = " ".join(f"nexthop via {h['gateway']}" for h in r.get("nexthops", []) if "gateway" in h)
        dev = f" dev {r['dev']}" if "dev" in r else ""
        # routes a routing daemon installed (the fleet's edge learns the VIP over BGP) are not the lab's
        proto = r.get("protocol")
        learnt = f" proto {proto}" if proto not in (None, "kernel", "boot", "static") else ""
        lines.append(f"{r['dst']}{via}{dev}{' ' + hops if hops else ''}{learnt}")
    return lines


def processes(netns: str) -> list[dict[str, Any]]:
    return [{"pid": pid, "cmd": cmdline(pid)} for pid in netns_pids(netns)]


def _node_problems(node: Node, state_dir: Path) -> list[str]:
    problems: list[str] = []
    links = {link["ifname"]: link for link in addresses(node.netns)}
    for iface in node.ifaces:
        link = links.get(iface.name)
        if link is None:
            problems.append(f"{node.name}: interface {iface.name} is missing")
        elif link["state"] != "UP" or str(iface.address) not in link["addresses"]:
            problems.append(f"{node.name}: {iface.name} is not up with {iface.address}")
    if links.get("lo", {}).get("state") != "UP":
        problems.append(f"{node.name}: lo is down")
    have = routes(node.netns)
    for r in node.routes:
        if not any(line.startswith(f"{r.dst} via {r.via} ") for line in have):
            problems.append(f"{node.name}: route {r.dst} via {r.via} is missing")
    expected = [f"{r.dst} via {r.via} " for r in node.routes]
    for line in have:
        if " via " in line and " proto " not in line and not any(line.startswith(e) for e in expected):
            problems.append(f"{node.name}: unexpected route {line}")
    wanted = dict(COMMON_SYSCTLS) | dict(node.sysctls)
    if dualstack.enabled(state_dir):
        wanted |= dict(dualstack.sysctls(node))
    values = netns_exec(node.netns, "sysctl", "-n", *wanted, check=False).stdout.splitlines()
    for (key, value), got in zip(wanted.items(), values):
        if got.split() != value.split():
            problems.append(f"{node.name}: sysctl {key} is {got!r}, want {value!r}")
    if node.role == "router" and netns_exec(node.netns, "nft", "list", "table", "ip", RR_NFT_TABLE,
                                            check=False).returncode:
        problems.append(f"{node.name}: nft table {RR_NFT_TABLE} is missing")
    if node.role == "upstream":
        for service in witness.SERVICES:
            pid = read_pid(witness.pid_file(node, service, state_dir))
            if pid is None or not alive(pid) or str(state_dir) not in cmdline(pid):
                problems.append(f"{node.name}: {service} is not running")
        missing = witness.expected_listeners() - listeners(node.netns)
        if missing:
            problems.append(f"{node.name}: nothing listens on "
                            f"{', '.join(f'{p}/{n}' for p, n in sorted(missing))}")
    return problems


def verify(topo: Topology | None = None, state_dir: Path = STATE_DIR) -> list[str]:
    """Everything that differs from the topology; empty when the lab is up and healthy."""
    topo = topo or article()
    existing = netns_list()
    missing = [ns for ns in topo.namespaces if ns not in existing]
    if missing:
        return [f"namespace {ns} is missing" for ns in missing]
    problems: list[str] = []
    ports = {link["ifname"]: link for link in ip_json(topo.switch_netns, "link", "show")}
    for node in topo.nodes:
        for iface in node.ifaces:
            port = ports.get(iface.port)
            bridge = topo.segment(iface.segment).bridge
            if port is None or port.get("master") != bridge or "UP" not in port.get("flags", []):
                problems.append(f"switch: port {iface.port} is not up on {bridge}")
        problems += _node_problems(node, state_dir)
    return problems + dualstack.problems(topo, state_dir)


def status(topo: Topology | None = None, state_dir: Path = STATE_DIR) -> dict[str, Any]:
    topo = topo or article()
    existing = netns_list()
    nodes = []
    for netns, node in [(topo.switch_netns, None), *((n.netns, n) for n in topo.nodes)]:
        entry: dict[str, Any] = {
            "name": node.name if node else "switch",
            "role": node.role if node else "switch",
            "netns": netns,
            "exists": netns in existing,
        }
        if entry["exists"]:
            entry |= {"links": addresses(netns), "routes": routes(netns), "processes": processes(netns)}
        nodes.append(entry)
    problems = verify(topo, state_dir)
    return {"up": not problems, "problems": problems, "state_dir": str(state_dir), "nodes": nodes}
