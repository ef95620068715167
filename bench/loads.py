"""Load generators, run in the client namespace, and what they report: a rate, loss and latency.

Every load is bounded twice: by its own duration option and by a subprocess timeout."""

from __future__ import annotations

import re
import shlex
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sheer.lab.errors import LabError
from sheer.lab.testing import Lab
from sheer.lab.topology import VIP

BENCH_DIR = Path(__file__).resolve().parent


@dataclass
class Sample:
    """One measured run of one proxy. `rate` is in `unit`; latencies in milliseconds."""

    rate: float
    unit: str
    loss: float = 0.0  # fraction of requests/queries that got no answer (or errors)
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50, p90, p99
    cpu: float = 0.0  # proxy processes, share of one core
    extra: dict[str, float] = field(default_factory=dict)


def _grab(pattern: str, text: str, what: str) -> str:
    m = re.search(pattern, text, re.MULTILINE)
    if not m:
        raise LabError(f"cannot find {what} in the load generator's output:\n{text[-2000:]}")
    return m.group(1)


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": q[49], "p90": q[89], "p99": q[98]}


# ---- DNS over UDP: dnsperf -------------------------------------------------------------------

def dnsperf(lab: Lab, duration: float, qps: int | None = None, server: str = str(VIP),
            sockets: int = 8) -> Sample:
    """dnsperf, closed loop (8 sockets, 200 queries in flight), 1 s timeout: queries/s and loss.

    -v prints one line per answered query with its latency: the percentiles come from those. The
    lines go to a file, not a pipe: read through a pipe while the load runs, tens of thousands of
    lines a second cost the harness ~15% of a core, taken from the proxy under test."""
    queries = Path(lab.state_dir) / "bench-dnsperf-queries.txt"
    queries.write_text("www.example.com A\n" * 100)
    output = Path(lab.state_dir) / "bench-dnsperf-output.txt"
    cmd = ["dnsperf", "-s", server, "-d", str(queries), "-l", f"{duration:g}", "-c", str(sockets),
           "-q", "200", "-t", "1", "-v"]
    if qps:
        cmd += ["-Q", str(qps)]
    shell = f"exec {shlex.join(cmd)} > {shlex.quote(str(output))}"
    try:
        res = lab.run("client", "sh", "-c", shell, timeout=duration + 20)
        out = output.read_text() if output.exists() else ""
    finally:
        output.unlink(missing_ok=True)
    if not out:
        raise LabError(f"dnsperf printed nothing: {res.stderr[-2000:]}")
    sent = int(_grab(r"Queries sent:\s+(\d+)", out, "Queries sent"))
    lost = int(_grab(r"Queries lost:\s+(\d+)", out, "Queries lost"))
    rate = float(_grab(r"Queries per second:\s+([\d.]+)", out, "Queries per second"))
    # "> NOERROR www.example.com A 0.000322" (seconds)
    lat = [float(m) * 1000 for m in re.findall(r"^> \S+ \S+ \S+ ([\d.]+)$", out, re.MULTILINE)]
    return Sample(rate, "q/s", lost / sent if sent else 1.0, percentiles(lat),
                  extra={"sent": sent, "lost": lost})


# ---- HTTP: wrk ------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise LabError(f"unknown wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(lab: Lab, url: str, duration: float, connections: int = 50, close: bool = False,
        unit: str = "req/s") -> Sample:
    """wrk, 2 threads. `close`: `Connection: close`, so every request is a new TCP connection."""
    cmd = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{max(1, round(duration))}s", "--latency",
           "--timeout", "2s", url]
    if close:
        cmd[1:1] = ["-H", "Connection: close"]
    res = lab.run("client", *cmd, timeout=duration + 20)
    out = res.stdout
    rate = float(_grab(r"^Requests/sec:\s+([\d.]+)", out, "Requests/sec"))
    total = int(_grab(r"^\s+(\d+) requests in", out, "requests"))
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(g) for g in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    lat = {f"p{p}": _ms(v) for p, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)$", out, re.MULTILINE)}
    return Sample(rate, unit, errors / max(total + errors, 1), lat,
                  extra={"requests": total, "errors": errors})


# ---- TCP bulk: iperf3 -----------------------------------------------------------------------

def iperf3(lab: Lab, port: int, duration: float) -> Sample:
    """One iperf3 TCP stream from the client through the proxy to the upstream's server."""
    import json

    res = lab.run("client", "iperf3", "-c", str(VIP), "-p", str(port), "-t", f"{max(1, round(duration))}",
                  "-J", timeout=duration + 20)
    try:
        report = json.loads(res.stdout)
    except json.JSONDecodeError as exc:
        raise LabError(f"iperf3 printed no JSON: {res.stdout[-500:]} {res.stderr[-500:]}") from exc
    if "error" in report:
        raise LabError(f"iperf3: {report['error']}")
    end = report["end"]
    gbits = end["sum_received"]["bits_per_second"] / 1e9
    retrans = float(end["sum_sent"].get("retransmits", 0))
    return Sample(gbits, "Gbit/s", 0.0, {}, extra={"retransmits": retrans})


def helper(name: str) -> list[str]:
    """argv to run one of bench's own scripts (idle clients, ...) with this Python in a namespace."""
    return [sys.executable, str(BENCH_DIR / name)]
