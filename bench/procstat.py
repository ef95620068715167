"""CPU time and memory of a proxy: its master and every descendant, read from /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields start after the last ')'
    return text.rsplit(")", 1)[1].split()


def parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def tree(root: int) -> list[int]:
    """root and all its descendants (nginx: master + workers; sheer: master + workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """user + system time of these processes so far (fields 14 and 15 of /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def rss_bytes(pids: list[int]) -> int:
    """Resident set size summed over the processes (field 24: pages)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[21]) * PAGE
    return total


def host_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot: /proc/stat's first line, idle and iowait idle."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - fields[3] - fields[4], total


@dataclass
class CpuMeter:
    """CPU used by a process tree between start() and stop(), as a share of one core."""

    root: int
    _pids: list[int] | None = None
    _cpu: float = 0.0
    _wall: float = 0.0
    _host: tuple[int, int] = (0, 0)
    host_busy: float = 0.0  # after stop(): the share of all CPUs busy (everything shares them)

    def start(self, now: float) -> None:
        self._pids = tree(self.root)
        self._cpu = cpu_seconds(self._pids)
        self._wall = now
        self._host = host_ticks()

    def stop(self, now: float) -> float:
        assert self._pids is not None, "start() first"
        # workers that exited meanwhile take their time with them; proxies here keep theirs
        used = cpu_seconds(self._pids) - self._cpu
        busy, total = host_ticks()
        self.host_busy = (busy - self._host[0]) / max(total - self._host[1], 1)
        return used / max(now - self._wall, 1e-9)
