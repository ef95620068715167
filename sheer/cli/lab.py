"""`sheer lab up|status [--json]|exec NODE CMD...|demo [--out DIR]|down`: the lab's only part that prints."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from sheer.lab.errors import LabError


def _progress(line: str) -> None:
    print(f"  {line}", flush=True)


def _parser(report_dir: Path) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sheer lab", description="the article's topology in network namespaces")
    sub = p.add_subparsers(dest="verb", required=True)
    up = sub.add_parser("up", help="build the lab (repairs a half-built one)")
    up.add_argument("--ipv6", action="store_true",
                    help="dual stack: IPv6 addresses beside the IPv4 ones (fd00:99::/64, fd00:16::/64)")
    up.add_argument("--fleet", type=int, metavar="N", choices=range(2, 5),
                    help="also N proxies (2 to 4) behind an ECMP router, each announcing the VIP over BGP")
    fl = sub.add_parser("fleet", help="stop or start sheer on one proxy of the fleet")
    fl.add_argument("action", choices=("stop", "start"))
    fl.add_argument("k", type=int, metavar="K", help="the proxy's number (proxyK)")
    st = sub.add_parser("status", help="nodes, addresses, routes, processes")
    st.add_argument("--json", action="store_true")
    ex = sub.add_parser("exec", help="run a command in a node: sheer lab exec client curl 192.168.99.10")
    ex.add_argument("node")
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    demo = sub.add_parser("demo", help="run the article end to end and write a report")
    demo.add_argument("--out", type=Path, default=report_dir, help=f"report directory (default {report_dir})")
    demo.add_argument(
        "--proxy",
        choices=("sheer", "nginx"),
        default="sheer",
        help="the proxy under test; nginx = the reference implementation",
    )
    demo.add_argument("--ipv6", action="store_true",
                      help="the lab dual-stack, and Method 1 and DSR router NAT over IPv6 as well")
    demo.add_argument("--fleet", type=int, nargs="?", const=0, metavar="N", choices=(0, 2, 3, 4),
                      help="the fleet instead: flows spread over N instances (default: the fleet that is "
                           "up, or 3), one stopped and withdrawn, clients kept on their upstreams")
    sub.add_parser("down", help="remove every namespace and process of the lab")
    return p


def _print_status(st: dict[str, Any]) -> None:
    print(f"lab: {'up' if st['up'] else 'NOT up'} (state in {st['state_dir']})")
    for node in st["nodes"]:
        if not node["exists"]:
            print(f"{node['name']:<7} {node['netns']:<13} (missing)")
            continue
        links = ", ".join(
            f"{link['ifname']} {' '.join(link['addresses']) or '-'} {link['state']}"
            for link in node["links"]
            if link["ifname"] != "lo"
        )
        print(f"{node['name']:<7} {node['netns']:<13} {links if node['role'] != 'switch' else ''}")
        if node["role"] == "switch":
            ports = [link["ifname"] for link in node["links"] if link["ifname"] != "lo"]
            print(f"        links: {', '.join(ports)}")
        for route in node["routes"]:
            print(f"        route {route}")
        for proc in node["processes"]:
            print(f"        pid {proc['pid']:<7} {proc['cmd'][:90]}")
    for problem in st["problems"]:
        print(f"problem: {problem}")


def main(argv: list[str]) -> int:
    try:
        from sheer.lab import build, inspect, topology  # topology: SHEER_LAB names the lab
    except LabError as exc:
        print(f"sheer lab: {exc}", file=sys.stderr)
        return 1
    args = _parser(topology.REPORT_DIR).parse_args(argv)
    try:
        if args.verb == "up":
            print(f"sheer lab up{f' --fleet {args.fleet}' if args.fleet else ''}", flush=True)
            if args.fleet:
                from sheer.lab import fleet
                fleet.up(args.fleet, progress=_progress)
            else:
                build.up(progress=_progress, ipv6=args.ipv6)
            return 0
        if args.verb == "fleet":
            from sheer.lab import fleet
            node = fleet.proxy(args.k)
            if args.action == "stop":
                fleet.stop_sheer(node, progress=_progress)
            else:
                fleet.start_sheer(node, progress=_progress)
            return 0
        if args.verb == "down":
            print("sheer lab down", flush=True)
            from sheer.lab import fleet
            if topology.current().fleet:
                fleet.remove(progress=_progress)
            build.down(progress=_progress)
            print("  lab is down", flush=True)
            return 0
        if args.verb == "status":
            build.require_root()
            st = inspect.status(topology.current())
            if args.json:
                json.dump(st, sys.stdout, indent=2)
                print()
            else:
                _print_status(st)
            return 0 if st["up"] else 1
        if args.verb == "exec":
            if not args.cmd:
                print("sheer lab exec: give a command, e.g. sheer lab exec client curl -s 192.168.99.10",
                      file=sys.stderr)
                return 2
            build.require_root()
            node = topology.current().node(args.node)
            os.execvp("ip", ["ip", "netns", "exec", node.netns, *args.cmd])
        if args.verb == "demo":
            if args.fleet is not None:
                from sheer.lab import fleet_demo
                return fleet_demo.main(args.out, args.fleet or None, lambda s: print(s, flush=True))
            from sheer.lab import demo

            return demo.main(out=args.out, proxy=args.proxy, echo=lambda s: print(s, flush=True),
                             ipv6=args.ipv6)
    except (LabError, KeyError) as exc:
        print(f"sheer lab: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 1
    return 2
