"""Other sessions share the lab: their test fixtures rebuild it, their proxies and tools run in
the same proxy namespace. A run is kept only if the lab was not rebuilt under it and nothing else
in the proxy namespace used the CPU meanwhile (an idle leftover, a tcpdump waiting for packets
that never come, say, does not count)."""

from __future__ import annotations

import difflib
import os
import re
import threading
import time
from pathlib import Path
from typing import Self

from bench import procstat
from sheer.lab.errors import LabError
from sheer.lab.procs import cmdline, netns_pids, read_pid
from sheer.lab.testing import Lab
from sheer.lab.witness import pid_file

BUSY = 0.05  # share of one core a foreign process may use before a run counts as disturbed


class Disturbed(LabError):
    """Something else used the proxy namespace (or rebuilt the lab) during a measured run."""


def _foreign(lab: Lab, mine: set[int]) -> set[int]:
    """Processes in the proxy namespace that are neither in `mine` nor started by this process
    (the memory workloads count sockets with `ss` there)."""
    pids = set(netns_pids(lab.node("proxy").netns)) - mine
    return {p for p in pids if cmdline(p) and procstat.parent(p) != os.getpid()}


def _busy(lab: Lab, seconds: float) -> list[int]:
    pids = sorted(_foreign(lab, set()))
    before = {p: procstat.cpu_seconds([p]) for p in pids}
    time.sleep(seconds)
    return [p for p in pids if procstat.cpu_seconds([p]) - before[p] > BUSY * seconds]


def wait_quiet(lab: Lab, seconds: float = 90) -> float:
    """Wait until nothing else in the proxy namespace uses the CPU; returns how long that took."""
    started = time.monotonic()
    while busy := _busy(lab, 1.0):
        if time.monotonic() - started > seconds:
            raise Disturbed(f"the proxy namespace stayed busy for {seconds:g}s: "
                            + "; ".join(cmdline(p)[:80] for p in busy))
    return time.monotonic() - started


def kernel_state(lab: Lab) -> str:
    """What the plumbing set, where another session's test could change it under a run: nft
    rulesets, policy rules and the two sysctls of the proxy, and the same of one upstream."""
    parts = []
    for node in ("proxy", "up1"):
        parts.append(lab.run(node, "nft", "list", "ruleset").stdout)
        parts.append(lab.run(node, "ip", "rule").stdout)
    parts.append(lab.run("proxy", "sysctl", "net.ipv4.ip_forward", "net.ipv4.udp_early_demux").stdout)
    # rule counters (and the fast path's named counters) move with the traffic itself
    return re.sub(r"packets \d+ bytes \d+", "packets bytes", "\n".join(parts))


def _witness_pid(lab: Lab) -> int | None:
    return read_pid(pid_file(lab.node("up1"), "dnsmasq", Path(lab.state_dir)))


class Watch:
    """Samples the proxy namespace twice a second while a run is measured."""

    def __init__(self, lab: Lab, proxy_pid: int) -> None:
        self.lab = lab
        self.proxy_pid = proxy_pid
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.witness = _witness_pid(lab)
        self.kernel = ""
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Self:
        self.kernel = kernel_state(self.lab)
        self.started = time.monotonic()
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            try:
                for pid in _foreign(self.lab, set(procstat.tree(self.proxy_pid))):
                    cpu = procstat.cpu_seconds([pid])
                    self.first.setdefault(pid, cpu)
                    self.last[pid] = cpu
            except LabError:
                return
            if self._stop.wait(0.5):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if exc[0] is not None:
            return
        if _witness_pid(self.lab) != self.witness:
            raise Disturbed("the lab was rebuilt during the run (another session's fixture)")
        elapsed = time.monotonic() - self.started
        now = kernel_state(self.lab)
        if now != self.kernel:
            changes = difflib.unified_diff(self.kernel.splitlines(), now.splitlines(), lineterm="", n=0)
            diff = [ln for ln in changes if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
            raise Disturbed("the proxy's netfilter/routing state changed during the run (another session's "
                            f"test?): {' | '.join(diff[:4])}")
        busy = {p: self.last[p] - self.first[p] for p in self.last
                if self.last[p] - self.first[p] > BUSY * elapsed}
        if busy:
            raise Disturbed("other processes used the CPU in the proxy namespace during the run: "
                            + ", ".join(f"pid {p} {cpu:.2f}s" for p, cpu in busy.items()))
