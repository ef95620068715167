"""`make bench WORKLOAD=fleet`: the aggregate DSR rate of the fleet with 2 proxies against 1, in the
same run, interleaved (1 2 1 2 ...). The fleet of 2 (`sheer lab up --fleet 2`) serves the bench's quiet
dnsmasq (172.16.0.2N, no query log) instead of the witnesses; "1 proxy" is proxy2's sheer stopped with
`-s quit` (its route withdrawn, the edge sends everything to proxy1), "2 proxies" both announcing.
dnsperf on the client, 32 sockets (flows the edge's ECMP spreads), against the VIP.

Where the time goes is measured beside the rate: the host's CPUs split into user, system and softirq
(the edge's routing, each proxy's nft fast path, the return router and the veths all run as softirq
on the same 2 CPUs), and the CPU of the upstreams' dnsmasq and of sheer's processes (the fast path
needs none of sheer's user space: its checker only)."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import guard, loads, procstat, upstreams
from sheer.lab import bird, fleet
from sheer.lab.procs import netns_exec, read_pid, wait_for
from sheer.lab.testing import Lab
from sheer.lab.topology import FLEET_VIP, RR_INTERNAL, Node, proxy_fabric

MODES = ("1 proxy", "2 proxies")
SOCKETS = 32
DEFAULT_JSON = Path("bench/results/fleet.json")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _quiet(lab: Lab, text: str) -> str:
    """A configuration's upstream servers moved to the bench's quiet dnsmasq."""
    for up in lab.topo.upstreams:
        text = text.replace(f"server {up.address()}:53;", f"server {upstreams.dns_address(up)}:53;")
    return text


def _sheer(netns: str, *args: str) -> None:
    netns_exec(netns, sys.executable, "-m", "sheer", *args, timeout=60)


def _configure(lab: Lab, proxies: list[Node], bench: bool) -> None:
    """Every proxy's sheer stopped, its plumbing reverted, its configuration the bench's (or its own
    again), applied, started: the fleet serving the quiet upstreams (or the witnesses)."""
    for node in proxies:
        conf = fleet.config_path(node, lab.state_dir)
        fleet.stop_sheer(node, lab.state_dir)
        _sheer(node.netns, "net", "revert", "-c", str(conf))
        own = fleet.fleet_config(node, lab.state_dir)
        conf.write_text(_quiet(lab, own) if bench else own)
        _sheer(node.netns, "net", "apply", "-c", str(conf), "--dsr", "origin")
        fleet.start_sheer(node, lab.state_dir)


def _origin(lab: Lab, verb: str) -> None:
    """Origin NAT for the fleet's VIP on each upstream's quiet address (`--role upstream`)."""
    conf = Path(lab.state_dir) / "bench-fleet.conf"
    conf.write_text(_quiet(lab, fleet.upstream_config(lab.state_dir).read_text()))
    for up in lab.topo.upstreams:
        extra = ("--dsr", "origin", "--vip", str(FLEET_VIP), "--via", str(RR_INTERNAL))
        extra = extra if verb == "apply" else ()
        _sheer(up.netns, "net", verb, "-c", str(conf), "--role", "upstream", "--host",
               upstreams.dns_address(up), *extra)


def _mode(lab: Lab, mode: str) -> None:
    edge, second = lab.node("edge"), fleet.proxy(2, lab.state_dir)
    if mode == "1 proxy":
        fleet.stop_sheer(second, lab.state_dir)
        want = [str(proxy_fabric(1))]
    else:
        if fleet.running(second, lab.state_dir) is None:
            fleet.start_sheer(second, lab.state_dir)
        want = [str(proxy_fabric(1)), str(proxy_fabric(2))]
    wait_for(lambda: bird.nexthops(edge) == want, 10, f"the edge to route {FLEET_VIP} via {want}")


def _cpu_of(pids: list[int]) -> float:
    return procstat.cpu_seconds([p for root in pids for p in procstat.tree(root)])


def _softirq() -> tuple[int, ...]:
    """user+nice, system, softirq and all jiffies of every CPU (/proc/stat)."""
    f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return f[0] + f[1], f[2], f[6], sum(f[:8])


def _measure(lab: Lab, duration: float, proxies: list[Node]) -> dict[str, Any]:
    dns = [pid for up in lab.topo.upstreams
           if (pid := read_pid(Path(lab.state_dir) / "bench" / up.name / "dnsmasq.pid")) is not None]
    sheer = [pid for node in proxies if (pid := fleet.running(node, lab.state_dir)) is not None]
    host0, dns0, sheer0, t0 = _softirq(), _cpu_of(dns), _cpu_of(sheer), time.monotonic()
    sample = loads.dnsperf(lab, duration, server=str(FLEET_VIP), sockets=SOCKETS)
    host1, wall = _softirq(), time.monotonic() - t0
    jiffies = max(host1[3] - host0[3], 1)
    return {"rate": sample.rate, "loss": sample.loss, "latency_ms": sample.latency_ms,
            "cpus": {"user": (host1[0] - host0[0]) / jiffies, "system": (host1[1] - host0[1]) / jiffies,
                     "softirq": (host1[2] - host0[2]) / jiffies},
            "dnsmasq_cores": (_cpu_of(dns) - dns0) / wall, "sheer_cores": (_cpu_of(sheer) - sheer0) / wall}


def run(lab: Lab, runs: int, duration: float) -> dict[str, Any]:
    upstreams.ensure(lab)
    fleet.up(2, lab.state_dir, progress=lambda line: _say(f"  {line}"))
    proxies = [fleet.proxy(k, lab.state_dir) for k in (1, 2)]
    samples: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    _origin(lab, "apply")
    try:
        _configure(lab, proxies, bench=True)
        for round_ in range(runs):
            for mode in MODES:
                _mode(lab, mode)
                guard.wait_quiet(lab)
                loads.dnsperf(lab, 1.0, server=str(FLEET_VIP), sockets=SOCKETS)       # warm-up
                s = _measure(lab, duration, proxies)
                samples[mode].append(s)
                cpus = " ".join(f"{k} {v:.0%}" for k, v in s["cpus"].items())
                _say(f"  fleet {mode:<9} run {round_ + 1}: {s['rate']:,.0f} q/s loss {s['loss']:.3%} "
                     f"CPUs: {cpus}; dnsmasq {s['dnsmasq_cores']:.2f} cores, sheer {s['sheer_cores']:.2f}")
    finally:
        _mode(lab, "2 proxies")
        _configure(lab, proxies, bench=False)
        _origin(lab, "revert")
    medians = {m: statistics.median(s["rate"] for s in samples[m]) for m in MODES if samples[m]}
    ratio = medians["2 proxies"] / medians["1 proxy"] if len(medians) == 2 and medians["1 proxy"] else None
    return {"runs": runs, "duration": duration, "sockets": SOCKETS, "median_qps": medians, "ratio": ratio,
            "samples": samples}


def main(lab: Lab, runs: int, duration: float, out: Path = DEFAULT_JSON) -> int:
    result = run(lab, runs, duration)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    med = result["median_qps"]
    print("| fleet (DSR, origin NAT, kernel fast path) | 1 proxy | 2 proxies | ratio |")
    print("|---|---|---|---|")
    ratio = result["ratio"]
    shown = "-" if ratio is None else f"{ratio:.2f}x"
    print(f"| aggregate q/s, median of {runs} | {med.get('1 proxy', 0):,.0f} | "
          f"{med.get('2 proxies', 0):,.0f} | {shown} |")
    _say(f"JSON: {out}")
    return 0 if ratio is not None else 1
