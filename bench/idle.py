"""Memory workloads: the proxy's RSS before and while it holds many idle flows.

The count of flows comes from the proxy namespace's own socket table (an observer independent of
either proxy): established TCP connections toward the upstreams, or UDP sockets of sessions."""

from __future__ import annotations

import subprocess
import time

from bench import procstat
from bench.loads import Sample, helper
from bench.upstreams import HTTP_PORT, UDP_SINK_PORT
from sheer.lab.errors import LabError
from sheer.lab.procs import alive, signal_and_wait
from sheer.lab.testing import Lab
from sheer.lab.topology import VIP

TCP_COUNT = 10_000
UDP_COUNT = 100_000
# `proxy_bind $remote_addr transparent` takes an ephemeral port of the client's address for each
# session: the proxy namespace's port range (28,232 ports) caps sessions per client address (and
# connect() fails with EAGAIN well before), so 100,000 sessions come from eight client addresses
EXTRA_CLIENTS = tuple(f"192.168.99.{i}" for i in range(3, 10))


def _count(lab: Lab, proto: str, port: int) -> int:
    """Sockets in the proxy namespace that face the upstreams on `port` (one per flow)."""
    flag = "-Htn" if proto == "tcp" else "-Hun"
    state = ("state", "established") if proto == "tcp" else ("state", "all")
    out = lab.run("proxy", "ss", flag, *state, "dport", "=", f":{port}", timeout=30).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def _settle(lab: Lab, proto: str, port: int, want: int, seconds: float) -> int:
    """Wait until the flow count reaches `want` or stops growing for three seconds."""
    deadline = time.monotonic() + seconds
    last, still = -1, 0.0
    while time.monotonic() < deadline:
        n = _count(lab, proto, port)
        if n >= want:
            return n
        if n == last:
            still += 0.25
            if still >= 3.0:
                return n
        else:
            last, still = n, 0.0
        time.sleep(0.25)
    return _count(lab, proto, port)


def _measure(lab: Lab, pid: int, argv: list[str], proto: str, upstream_port: int, want: int,
             seconds: float) -> Sample:
    time.sleep(0.5)
    pids = procstat.tree(pid)
    before = procstat.rss_bytes(pids)
    proc = subprocess.Popen(["ip", "netns", "exec", lab.node("client").netns, *argv], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "ready":
            raise LabError(f"idle client failed: {line} {proc.stderr.read() if proc.stderr else ''}")
        opened = int(line[1])
        flows = _settle(lab, proto, upstream_port, opened, 40)
        after = procstat.rss_bytes(procstat.tree(pid))
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            if alive(proc.pid):
                signal_and_wait(proc.pid)
    if flows <= 0:
        raise LabError(f"no {proto} flows reached the upstreams ({opened} opened by the client)")
    per = (after - before) / flows
    return Sample(per, "B/flow", max(0.0, 1 - flows / want), {},
                  extra={"flows": flows, "opened": opened, "rss_before_mb": before / 2**20,
                         "rss_after_mb": after / 2**20})


def tcp(lab: Lab, pid: int, count: int, port: int, seconds: float) -> Sample:
    argv = [*helper("idle_client.py"), "tcp", str(VIP), str(port), str(count), f"{seconds:g}"]
    return _measure(lab, pid, argv, "tcp", HTTP_PORT, count, seconds)


def udp(lab: Lab, pid: int, count: int, port: int, seconds: float) -> Sample:
    added = [a for a in EXTRA_CLIENTS
             if lab.run("client", "ip", "addr", "add", f"{a}/24", "dev", "sheer-pub").returncode == 0]
    try:
        argv = [*helper("idle_client.py"), "udp", str(VIP), str(port), str(count), f"{seconds:g}",
                str(lab.node("client").address()), *EXTRA_CLIENTS]
        return _measure(lab, pid, argv, "udp", UDP_SINK_PORT, count, seconds)
    finally:
        for a in added:
            lab.run("client", "ip", "addr", "del", f"{a}/24", "dev", "sheer-pub")
