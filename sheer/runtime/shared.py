"""The statistics and control board: shared memory written by the workers, read by whoever answers
the API, kept by the master for its whole life (across reloads).

One memfd, mapped MAP_SHARED by the master before any fork, so every worker, health checker and
later generation sees the same pages:

- statistics: ROWS rows of `columns` int64, one row per living writer process (the master hands
  a free row to each process it forks and zeroes that row's gauges when it reaps the process);
  columns are placed by sheer.core.stats. A process adds only to its own row: no lock.
- control: what the API changed (`down`, `drain`, `weight` of a server), one row of CONTROL_WIDTH
  int64 per upstream server, and (row 0) a version number that every change bumps and the
  generation now serving; balancers compare
  the version once per pick and re-read only when it moved, so a PATCH takes effect in every
  worker at its next request. Writers (API requests in any worker) hold an fcntl lock on the
  memfd: two PATCHes never interleave, and a writer that dies releases it.
"""

from __future__ import annotations

import fcntl
import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sheer.config.model import Config
from sheer.core.stats import Kind, Layout, Registry, layout

ROWS = 128                  # writer processes alive at once: workers of every generation, checkers
CONTROL_WIDTH = 4           # per server: down, drain, weight (0: as configured), spare
UNSET, FALSE, TRUE = 0, 1, 2
CONTROL_ROWS = 4096


def _columns_for(config: Config) -> int:
    """Room for this configuration four times over (reloads add columns), at least 4096."""
    probe = Registry(1 << 30)
    layout(config, probe, Registry(1 << 30))
    need = probe.used
    columns = 4096
    while columns < 4 * need:
        columns *= 2
    return columns


class SharedBoard:
    def __init__(self, config: Config) -> None:
        self.columns = _columns_for(config)
        self.registry = Registry(self.columns)
        self.control_registry = Registry(CONTROL_ROWS)
        stats_bytes = ROWS * self.columns * 8
        control_bytes = (1 + CONTROL_ROWS) * CONTROL_WIDTH * 8
        self.fd = os.memfd_create("sheer-shared", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, stats_bytes + control_bytes)
        self.mem = mmap.mmap(self.fd, stats_bytes + control_bytes, flags=mmap.MAP_SHARED)
        view = memoryview(self.mem)
        self.stats = view[:stats_bytes].cast("q")
        self.control = view[stats_bytes:].cast("q")
        self.free_rows = list(range(ROWS - 2, -1, -1))   # the last row is the master's
        # Rung after every change of the control board: the health checker feeds the API's changes
        # to the kernel's fast path (sheer.runtime.fastpath) without polling the version.
        self.changed_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        # ... and the master decides again whether to announce its VIPs (sheer.runtime.announce)
        self.bell = Doorbell()
        self.layout = self.plan(config)

    def plan(self, config: Config) -> Layout:
        """The layout of a (new) generation; columns of what it shares with the last one are kept."""
        self.layout = layout(config, self.registry, self.control_registry)
        return self.layout

    # --- rows: one per writer process -------------------------------------------------------

    def take_row(self) -> int:
        return self.free_rows.pop() if self.free_rows else -1

    def release_row(self, row: int) -> None:
        """The process of `row` is gone: its counters stay (totals), its gauges go to zero."""
        if row < 0:
            return
        base = row * self.columns
        stats = self.stats
        for column, kind in enumerate(self.layout.kinds):
            if kind is Kind.GAUGE:
                stats[base + column] = 0
        self.free_rows.append(row)

    def writer(self, row: int) -> memoryview:
        """A process's own row (a scratch row when none was free: counted nowhere)."""
        if row < 0:
            return memoryview(bytearray(self.columns * 8)).cast("q")
        return self.stats[row * self.columns:(row + 1) * self.columns]

    def publish(self, column: int, value: int) -> None:
        """Set a value whose one source is outside sheer's processes (the kernel fast path's counters,
        read by the current health checker): kept in the master's row, so whichever checker reads
        last sets it, and a reload or respawn neither loses nor doubles it."""
        if column:
            self.stats[(ROWS - 1) * self.columns + column] = value

    def count_respawn(self) -> None:
        """nginx Plus's /processes `respawned`: the master's own row is the last one."""
        self.stats[(ROWS - 1) * self.columns + self.layout.glob.at("respawned")] += 1

    # --- reading ---------------------------------------------------------------------------

    def total(self, column: int) -> int:
        return sum(self.stats[column::self.columns]) if column else 0

    def latest(self, column: int) -> int:
        return max(self.stats[column::self.columns]) if column else 0

    def value(self, column: int) -> int:
        return self.latest(column) if self.layout.kinds[column] is Kind.LATEST else self.total(column)

    # --- control ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self.control[0]

    @property
    def cells(self) -> memoryview:
        return self.control

    @property
    def generation(self) -> int:
        """The generation now serving (set by the master): an older checker stops feeding the kernel."""
        return self.control[1]

    @generation.setter
    def generation(self, value: int) -> None:
        self.control[1] = value

    @property
    def kernel_pending(self) -> bool:
        """The kernel's DSR table does not follow the health checks yet (the checker has a change to
        write, or has not written its first table): the master does not announce a VIP meanwhile,
        so an instance never receives a fleet's flows with a table the others do not have."""
        return bool(self.control[2])

    @kernel_pending.setter
    def kernel_pending(self, value: bool) -> None:
        self.control[2] = int(value)

    def overrides(self, row: int) -> tuple[int, int, int]:
        """(down, drain, weight) set by the API for control row `row`: UNSET/FALSE/TRUE, weight 0 unset."""
        base = (1 + row) * CONTROL_WIDTH
        control = self.control
        return control[base], control[base + 1], control[base + 2]

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Hold the writers' lock; the version moves when the change is complete."""
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            yield
            self.control[0] += 1
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)
        try:
            os.eventfd_write(self.changed_fd, 1)
        except OSError:
            pass
        self.bell.ring()

    def set_override(self, row: int, down: int | None = None, drain: int | None = None,
                     weight: int | None = None) -> None:
        """Within `changing()`."""
        base = (1 + row) * CONTROL_WIDTH
        if down is not None:
            self.control[base] = down
        if drain is not None:
            self.control[base + 1] = drain
        if weight is not None:
            self.control[base + 2] = weight


class Doorbell:
    """Children (the health checker, a worker answering the API) tell the master that something it
    decides on changed. The master waits in sigtimedwait(), not on descriptors, and workers that
    dropped to `user` may not signal a root master; so the bell is a pipe whose read end the master
    owns with O_ASYNC: any write makes the kernel send the master SIGIO, with the master's own
    credentials (F_SETOWN records them), and the master drains the pipe when it takes the signal."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def own(self) -> None:
        """In the master, after any daemonizing fork: SIGIO goes to this process."""
        fcntl.fcntl(self.read_fd, fcntl.F_SETOWN, os.getpid())
        flags = fcntl.fcntl(self.read_fd, fcntl.F_GETFL)
        fcntl.fcntl(self.read_fd, fcntl.F_SETFL, flags | os.O_ASYNC)

    def ring(self) -> None:
        try:
            os.write(self.write_fd, b"\0")
        except OSError:          # full: a ring is already waiting
            pass

    def drain(self) -> None:
        try:
            while os.read(self.read_fd, 4096):
                pass
        except OSError:
            pass
