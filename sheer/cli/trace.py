"""`sheer trace -c CONF [--client ADDR] [--seconds N] [--json]`: watch one flow hop by hop (the capture and
the following are sheer.doctor.capture's; here the arguments, where to watch, and what is printed)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from sheer.cli.common import DEFAULT_CONF, load_config, say
from sheer.doctor.capture import MAX_SECONDS, Flow, Spot, bpf, capture, follow, ports
from sheer.doctor.fastpath_trace import notes as fastpath_notes
from sheer.doctor.fastpath_trace import steering
from sheer.doctor.pcap import endpoint
from sheer.doctor.trace_why import explain, reader
from sheer.lab.errors import LabError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sheer trace", description=(
        "Watch the proxy's interfaces (in the lab: every node) for one flow and print its path hop by hop."))
    p.add_argument("-c", dest="conf", metavar="file", default=DEFAULT_CONF, help="configuration file")
    p.add_argument("--client", metavar="ADDR", help="only flows from this client address")
    p.add_argument("--seconds", type=float, default=5.0, help=f"how long to watch (at most {MAX_SECONDS:g})")
    p.add_argument("--json", action="store_true", help="the hops as JSON")
    return p


def spots() -> list[Spot]:
    """The lab's nodes when its namespaces exist (and we are in the root one or one of them), else here."""
    from sheer.lab.topology import article  # LabError when SHEER_LAB is not a lab's name

    topo = article()
    try:
        named = set(os.listdir("/run/netns"))
    except OSError:
        named = set()
    if all(node.netns in named for node in topo.nodes):
        return [Spot(node.name, node.netns) for node in topo.nodes]
    return [Spot("here", None)]


def _watching(where: list[Spot], bpf_text: str, seconds: float) -> None:
    print(f"sheer trace: watching {', '.join(s.node for s in where)} for {seconds:g}s: {bpf_text}",
          file=sys.stderr, flush=True)


def render(flow: Flow) -> str:
    t0 = flow.hops[0].packet.time
    width = max(len(h.node) for h in flow.hops)
    out = [f"sheer trace: {flow.proto} flow {endpoint(*flow.client)} -> {endpoint(*flow.front)}"]
    for h in flow.hops[:60]:
        out.append(f"  +{(h.packet.time - t0) * 1000:9.3f} ms  {h.node:<{width}}  {h.dev:<10} "
                   f"{'out' if h.packet.outgoing else 'in ':<3}  {h.packet.endpoints()}")
    if len(flow.hops) > 60:
        out.append(f"  ... {len(flow.hops) - 60} more")
    route = " -> ".join(dict.fromkeys(h.node for h in flow.hops))
    out.append(f"path: {route}")
    if flow.reached:
        out.append(f"reply: reached the client from {endpoint(*flow.front)}"
                   + (f", sent on by {' -> '.join(flow.reply_path)}" if flow.reply_path else ""))
    elif flow.stopped_at:
        h = flow.stopped_at
        out.append(f"reply: none reached the client; the last reply was seen at {h.node} "
                   f"({h.dev}, {'out' if h.packet.outgoing else 'in'}): {h.packet.endpoints()} — it stopped "
                   "there")
    else:
        out.append("reply: none seen anywhere; the request stopped at "
                   f"{flow.hops[-1].node} ({flow.hops[-1].dev})")
    return "\n".join(out)


def to_json(flow: Flow) -> dict[str, Any]:
    t0 = flow.hops[0].packet.time
    stopped = flow.stopped_at
    return {"proto": flow.proto, "client": list(flow.client), "front": list(flow.front),
            "hops": [h.to_json(t0) for h in flow.hops], "reached": flow.reached,
            "reply_path": list(flow.reply_path),
            "stopped_at": stopped.to_json(t0) if stopped else None}


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    config = load_config(args.conf)
    if config is None:
        return 1
    listen, upstream, hosts = ports(config)
    if not listen:
        say("[emerg] the configuration listens nowhere: nothing to trace")
        return 1
    try:
        where = spots()
    except LabError as exc:
        say(f"[emerg] {exc}")
        return 1
    said = fastpath_notes(steering(where))
    hops = capture(where, bpf(listen, upstream, args.client), args.seconds, _watching)
    flow = follow(hops, listen, upstream, hosts, args.client)
    if flow is not None:
        said += explain(flow, reader(where))
    if flow is None:
        print(json.dumps({"hops": [], "reached": False, "notes": said}) if args.json else
              "\n".join([f"sheer trace: no flow to the configuration's ports seen in {args.seconds:g}s",
                         *(f"note: {n}" for n in said)]))
        return 1
    print(json.dumps(to_json(flow) | {"notes": said}, indent=1) if args.json else
          "\n".join([render(flow), *(f"note: {n}" for n in said)]))
    return 0 if flow.reached else 1
