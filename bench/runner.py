"""Run workloads against both proxies, interleaved (A B A B ...), and keep every sample.

Each run: the lab and bench servers made healthy, the method's plumbing applied for that proxy
(`sheer net apply` for sheer, the article's rules for nginx), the proxy started, a one-second
warm-up, the measured load (CPU of the proxy's processes read around it), then everything undone.
A run that fails because the lab moved under it (another session's fixture tore it down) is
retried after repairing the lab."""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import guard, procstat, profile, upstreams
from bench.loads import Sample
from bench.workloads import Context, Workload
from sheer.lab import build, plumbing, running_proxy
from sheer.lab.errors import LabError
from sheer.lab.procs import netns_exec, run
from sheer.lab.running_proxy import Kind
from sheer.lab.testing import Lab
from sheer.lab.topology import PREFIX, RR_INTERNAL, VIP

KINDS: tuple[Kind, ...] = ("nginx", "sheer")
BENCH_TABLE = f"{PREFIX}_bench"
ATTEMPTS = 4


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _nft(netns: str, ruleset: str) -> None:
    run("ip", "netns", "exec", netns, "nft", "-f", "-", input=ruleset)


def _nginx_extra(lab: Lab, method: str) -> None:
    """The reference rules are the article's, for the witnesses' ports and addresses; the bench's
    servers (quiet nginx on 8080, iperf3 on 5201, the UDP witness on 8000, quiet dnsmasq on
    172.16.0.2N) need the same treatment, in a table of their own."""
    ups = lab.topo.upstreams
    if method == "dsr-router":
        addrs = ", ".join(upstreams.dns_address(n) for n in ups)
        _nft(lab.node("proxy").netns, f"""table ip {BENCH_TABLE} {{
    chain postrouting {{
        type filter hook postrouting priority srcnat;
        oifname "{PREFIX}-pub" ip saddr {{ {addrs} }} udp sport 53 ip saddr set {VIP}
    }}
}}
""")
        return
    if method == "dsr-origin":
        for n in ups:
            _nft(n.netns, f"""table ip {BENCH_TABLE} {{
    chain output {{
        type filter hook output priority filter;
        ip saddr {upstreams.dns_address(n)} ip daddr != 172.16.0.0/24 udp sport 53 ip saddr set {VIP}
    }}
}}
""")
        return
    ruleset = f"""table ip {BENCH_TABLE} {{
    chain prerouting {{
        type filter hook prerouting priority mangle;
        ip saddr 172.16.0.0/24 tcp sport {{ {upstreams.HTTP_PORT}, {upstreams.IPERF_PORT} }} meta mark set 0x1
        ip saddr 172.16.0.0/24 udp sport {upstreams.UDP_SINK_PORT} meta mark set 0x1
    }}
}}
"""
    _nft(lab.node("proxy").netns, ruleset)


def _sheer_net(netns: str, verb: str, *args: str) -> None:
    res = netns_exec(netns, sys.executable, "-m", "sheer", "net", verb, *args, check=False)
    if res.returncode != 0 and verb == "apply":
        lines = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
        raise LabError(f"`sheer net apply {' '.join(args)}` failed in {netns}: {lines[-1] if lines else ''}")


def _sheer_origin(lab: Lab, verb: str, config: Path, extra: tuple[str, ...] = ()) -> None:
    """`sheer net apply|revert` for origin NAT: the proxy's share, then `--role upstream` on each
    upstream for its bench DNS address (the lab's plumbing passes the witness address, which the
    bench config does not name)."""
    _sheer_net(lab.node("proxy").netns, verb, "-c", str(config),
               *(("--dsr", "origin", *extra) if verb == "apply" else ()))
    for n in lab.topo.upstreams:
        extra = ("--dsr", "origin", "--vip", str(VIP), "--via", str(RR_INTERNAL), "--internal",
                 "172.16.0.0/24")
        _sheer_net(n.netns, verb, "-c", str(config), "--role", "upstream", "--host", upstreams.dns_address(n),
                   *(extra if verb == "apply" else ()))


def _routing(lab: Lab, on: bool) -> None:
    """The ceiling's plumbing: the proxy's namespace a plain router (forwarding on, no rule, no
    rewrite) with an ECMP route to the address every upstream's quiet dnsmasq also answers on
    (hashed by ports, fib_multipath_hash_policy=1, so the client's sockets spread over the four),
    the client told to reach it through the proxy. Off: all of it taken back."""
    proxy_ns, client_ns = lab.node("proxy").netns, lab.node("client").netns
    if on:
        hops = [arg for n in lab.topo.upstreams for arg in ("nexthop", "via", upstreams.dns_address(n))]
        netns_exec(proxy_ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1")
        netns_exec(proxy_ns, "ip", "route", "replace", f"{upstreams.ANYCAST}/32", *hops)
        netns_exec(client_ns, "ip", "route", "replace", f"{upstreams.ANYCAST}/32", "via", str(VIP))
    else:
        netns_exec(client_ns, "ip", "route", "del", f"{upstreams.ANYCAST}/32", check=False)
        netns_exec(proxy_ns, "ip", "route", "del", f"{upstreams.ANYCAST}/32", check=False)
        netns_exec(proxy_ns, "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv4.fib_multipath_hash_policy=0")


@contextlib.contextmanager
def _no_proxy(lab: Lab) -> Iterator[int]:
    """What stands for the proxy where there is none (the ceiling): an idle process in its namespace,
    so the CPU meter and the guard have a process tree to watch; it is ended by its PID."""
    process = subprocess.Popen(["ip", "netns", "exec", lab.node("proxy").netns, "sleep", "600"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


def _clean(lab: Lab, workload: Workload, config: Path) -> None:
    for node in (lab.node("proxy"), *lab.topo.upstreams):
        netns_exec(node.netns, "nft", "delete", "table", "ip", BENCH_TABLE, check=False)
    if workload.routing:
        _routing(lab, False)
    plumbing.reference_revert()
    if config.exists():
        if workload.method == "dsr-origin":
            _sheer_origin(lab, "revert", config)
        else:
            plumbing.sheer_revert(workload.method, config)


@dataclass
class Result:
    workload: Workload
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {k: [] for k in KINDS})
    failures: list[str] = field(default_factory=list)

    def median(self, kind: str) -> dict[str, Any] | None:
        got = self.samples[kind]
        if not got:
            return None
        keys = sorted({k for s in got for k in s.latency_ms})
        return {
            "rate": self._med([s.rate for s in got]),
            "unit": got[0].unit,
            "loss": self._med([s.loss for s in got]),
            "latency_ms": {k: self._med([s.latency_ms[k] for s in got if k in s.latency_ms]) for k in keys},
            "cpu": self._med([s.cpu for s in got]),
            "host_busy": self._med([s.extra["host_busy"] for s in got if "host_busy" in s.extra]),
            "runs": len(got),
        }

    @staticmethod
    def _med(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    def ratio(self) -> float | None:
        a, b = self.median("sheer"), self.median("nginx")
        if not a or not b or not b["rate"]:
            return None
        return float(a["rate"] / b["rate"])

    def as_json(self) -> dict[str, Any]:
        w = self.workload
        ratio = self.ratio()
        return {
            "name": w.name, "title": w.title, "method": w.method,
            "target": w.target, "higher_is_better": w.higher_is_better, "target_note": w.target_note,
            "ceiling": w.ceiling,
            "ratio": ratio, "meets": None if ratio is None else w.meets(ratio),
            "median": {k: self.median(k) for k in KINDS},
            "samples": {k: [asdict(s) for s in v] for k, v in self.samples.items()},
            "failures": self.failures,
        }


def run_once(lab: Lab, workload: Workload, kind: Kind, duration: float,
             profile_dir: Path | None = None) -> Sample:
    if workload.ipv6:
        lab.up()
        build.ipv6(True, lab.topo, lab.state_dir)
    config_text = workload.config_for(kind)
    config = Path(lab.state_dir) / f"bench-{workload.name}.conf"
    upstreams.ensure(lab)
    if workload.prepare is not None:
        workload.prepare(lab)
    config.write_text(config_text)
    _clean(lab, workload, config)
    routed = kind == "sheer" and workload.routing
    try:
        if routed:
            _routing(lab, True)
        elif kind == "sheer" and workload.method == "dsr-origin":
            _sheer_origin(lab, "apply", config, workload.sheer_apply)
        elif kind == "sheer":
            plumbing.sheer_apply(workload.method, config, *workload.sheer_apply)
        elif workload.ipv6:
            # the same plumbing as sheer's, from sheer's config (nginx's lacks sheer's directives)
            config.write_text(workload.config_for("sheer"))
            plumbing.sheer_apply(workload.method, config, "--fastpath", "off")
            config.write_text(config_text)
        else:
            plumbing.reference_apply(workload.method)
            _nginx_extra(lab, workload.method)
        guard.wait_quiet(lab)
        # proxies' prefixes under bench/: the lab's own proxy-N directories belong to test sessions
        measure = workload.routed if routed and workload.routed else workload.measure
        with (_no_proxy(lab) if routed else _proxy_pid(kind, config_text, lab)) as pid:
            if workload.warmup:
                measure(Context(lab, 1.0, pid))
            spies = (profile.start(pid, duration, profile_dir, workload.name)
                     if profile_dir is not None and kind == "sheer" and not routed else [])
            with guard.Watch(lab, pid):
                meter = procstat.CpuMeter(pid)
                meter.start(time.monotonic())
                sample = measure(Context(lab, duration, pid))
                sample.cpu = meter.stop(time.monotonic())
                sample.extra["host_busy"] = meter.host_busy
            profile.wait(spies, timeout=duration + 10)
            return sample
    finally:
        _clean(lab, workload, config)


@contextlib.contextmanager
def _proxy_pid(kind: Kind, config_text: str, lab: Lab) -> Iterator[int]:
    with running_proxy.running(kind, config_text, Path(lab.state_dir) / "bench") as running:
        yield running.pid


def run_all(lab: Lab, workloads: list[Workload], runs: int, duration: float,
            kinds: tuple[Kind, ...] = KINDS, progress: Callable[[str], None] = _say,
            profile_dir: Path | None = None) -> list[Result]:
    results = []
    for workload in workloads:
        result = Result(workload)
        for round_ in range(runs):
            for kind in kinds:
                for attempt in range(1, ATTEMPTS + 1):
                    try:
                        sample = run_once(lab, workload, kind, duration, profile_dir)
                    except (LabError, OSError, subprocess.SubprocessError) as exc:
                        note = (f"{workload.name} {kind} run {round_ + 1} attempt {attempt}: "
                                f"{type(exc).__name__}: {exc}")
                        result.failures.append(note)
                        progress(f"  ! {note}")
                        continue
                    result.samples[kind].append(sample)
                    lat = " ".join(f"{k} {v:.2f}ms" for k, v in sample.latency_ms.items())
                    progress(f"  {workload.name:<15} {kind:<5} run {round_ + 1}: {sample.rate:,.1f} "
                             f"{sample.unit} loss {sample.loss:.3%} cpu {sample.cpu:.0%}"
                             f" host {sample.extra.get('host_busy', 0):.0%} {lat}")
                    break
        results.append(result)
    return results
