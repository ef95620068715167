"""Other sessions share the lab: their test fixtures rebuild it, their proxies run in the same
proxy namespace. A run is only kept if nothing else ran there while it was measured."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Self

from bench import procstat
from sheer.lab.errors import LabError
from sheer.lab.procs import cmdline, netns_pids, read_pid
from sheer.lab.testing import Lab
from sheer.lab.witness import pid_file


class Disturbed(LabError):
    """Something else used the proxy namespace (or rebuilt the lab) during a measured run."""


def _foreign(lab: Lab, mine: set[int]) -> set[int]:
    """Processes in the proxy namespace that are neither in `mine` nor started by this process
    (the memory workloads count sockets with `ss` there)."""
    pids = set(netns_pids(lab.node("proxy").netns)) - mine
    return {p for p in pids if cmdline(p) and procstat.parent(p) != os.getpid()}


def wait_quiet(lab: Lab, seconds: float = 90) -> float:
    """Wait until no process runs in the proxy namespace; returns how long that took."""
    started = time.monotonic()
    while _foreign(lab, set()):
        if time.monotonic() - started > seconds:
            raise Disturbed(f"the proxy namespace stayed busy for {seconds:g}s: "
                            + "; ".join(cmdline(p)[:80] for p in sorted(_foreign(lab, set()))))
        time.sleep(0.5)
    return time.monotonic() - started


def _witness_pid(lab: Lab) -> int | None:
    return read_pid(pid_file(lab.node("up1"), "dnsmasq", Path(lab.state_dir)))


class Watch:
    """Samples the proxy namespace twice a second while a run is measured."""

    def __init__(self, lab: Lab, proxy_pid: int) -> None:
        self.lab = lab
        self.proxy_pid = proxy_pid
        self.seen: dict[int, int] = {}
        self.witness = _witness_pid(lab)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                for pid in _foreign(self.lab, set(procstat.tree(self.proxy_pid))):
                    self.seen[pid] = self.seen.get(pid, 0) + 1
            except LabError:
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if exc[0] is not None:
            return
        if _witness_pid(self.lab) != self.witness:
            raise Disturbed("the lab was rebuilt during the run (another session's fixture)")
        # a process seen twice (a second apart) ran beside ours: a proxy, not a quick `ss`
        lasting = [pid for pid, n in self.seen.items() if n >= 2]
        if lasting:
            raise Disturbed("other processes ran in the proxy namespace during the run: pids "
                            + ", ".join(map(str, lasting)))
