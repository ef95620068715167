"""The health checker process: one per generation, forked by the master next to the workers.

Each checked peer is probed once here (not once per worker), and its state is published on
the shared `HealthBoard` that every worker's balancer reads. The master respawns the checker
if it dies; the new one resumes from the states on the board.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time

import uvloop

from sheer.config.health import HttpMatch
from sheer.config.model import Config, UpstreamServer
from sheer.core.hcmatch import Verdict
from sheer.core.health import Changed, Health, Outcome, PeerHealth
from sheer.core.stats import Block
from sheer.io.context import Identity
from sheer.io.logs import ErrorLogger, reopen_logs
from sheer.io.probes import http_probe, tcp_probe, udp_probe
from sheer.runtime import proctitle
from sheer.runtime.board import CheckedGroup, HealthBoard
from sheer.runtime.privileges import drop_privileges
from sheer.runtime.shared import SharedBoard
from sheer.runtime.worker import die_with_parent


def run_checker(config: Config, board: HealthBoard, shared: SharedBoard | None = None,
                identity: Identity | None = None) -> int:
    """Entry point in the forked child. Returns the exit status."""
    die_with_parent()
    proctitle.child("health checker")
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for signum in (signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    log = ErrorLogger(config.error_log)
    drop_privileges(config, log)     # probes need no privilege: they come from the proxy's own address
    uvloop.install()
    try:
        shared = shared or SharedBoard(config)
        asyncio.run(_check_all(board, log, HealthCounters(shared, (identity or Identity()).row)))
    except Exception as exc:  # noqa: BLE001  (the last resort: the checker must say why it died)
        log.log("alert", f"health checker process failed: {exc!r}")
        return 2
    return 0


class HealthCounters:
    """The checker's row of the shared board: nginx Plus's `health_checks`, `downtime`, `downstart`,
    and sheer's transition counts."""

    def __init__(self, shared: SharedBoard, row: int) -> None:
        self.shared = shared
        self.row = shared.writer(row)

    def block(self, group: CheckedGroup, index: int) -> Block | None:
        refs = self.shared.layout.peers(group.upstream)
        return refs[index].block if index < len(refs) else None

    def starting(self, group: CheckedGroup, index: int, state: Health, now: float) -> None:
        """A peer that starts out not up (`mandatory`: checking) has been down since now."""
        block = self.block(group, index)
        if block is not None and state is not Health.UP and not self.shared.latest(block.at("downstart")):
            self.row[block.at("downstart")] = int(now * 1000)

    def record(self, group: CheckedGroup, index: int, passed: bool, change: Changed | None,
               now: float) -> None:
        block = self.block(group, index)
        if block is None:
            return
        row = self.row
        row[block.at("checks")] += 1
        row[block.at("last_passed")] = int(passed)
        row[block.at("last_failed")] = int(not passed)
        if not passed:
            row[block.at("check_fails")] += 1
        if change is None:
            return
        ms = int(now * 1000)
        if change.new is Health.UP:
            row[block.at("became_healthy")] += 1
            started = self.shared.latest(block.at("downstart"))
            if change.old is not Health.UP and started:
                row[block.at("downtime")] += max(0, ms - started)
            row[block.at("downstart")] = 0
        else:
            if change.new is Health.DOWN:
                row[block.at("became_unhealthy")] += 1
                row[block.at("unhealthy")] += 1
            if change.old is Health.UP:
                row[block.at("downstart")] = ms


async def _check_all(board: HealthBoard, log: ErrorLogger, counters: HealthCounters) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, reopen_logs)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)
    try:
        async with asyncio.TaskGroup() as tasks:
            for group in board.groups:
                for index, server in enumerate(group.upstream.servers):
                    if not server.down:
                        tasks.create_task(_check_peer(board, group, index, server, log, counters))
            await stop.wait()
            raise _Stopped
    except* _Stopped:
        pass


class _Stopped(Exception):
    """Ends the task group: every probe loop is cancelled."""


async def _check_peer(board: HealthBoard, group: CheckedGroup, index: int, server: UpstreamServer,
                      log: ErrorLogger, counters: HealthCounters) -> None:
    loop = asyncio.get_running_loop()
    health = PeerHealth(group.check, loop.time(), board.get(group, index))
    counters.starting(group, index, health.state, time.time())
    host, port = group.target(server)
    while True:
        delay = health.due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        verdict = await _probe(group, host, port)
        outcome = Outcome.PASSED if verdict.passed else Outcome.FAILED
        change = health.record(outcome, loop.time(), verdict.reason, random.random())
        counters.record(group, index, verdict.passed, change, time.time())
        if change is not None:
            board.set(group, index, change.new)
            _log_change(log, group, server, change)


async def _probe(group: CheckedGroup, host: str, port: int) -> Verdict:
    check = group.check
    if isinstance(check.match, HttpMatch) or group.where.startswith("http "):
        return await http_probe(host, port, check, group.upstream.name)
    if check.udp:
        return await udp_probe(host, port, check)
    return await tcp_probe(host, port, check)


def _log_change(log: ErrorLogger, group: CheckedGroup, server: UpstreamServer, change: Changed) -> None:
    verdict = "healthy" if change.new is Health.UP else "unhealthy"
    level = "notice" if change.new is Health.UP else "warn"
    log.log(level, f'peer {server.name} in upstream "{group.upstream.name}" is {verdict} '
                   f"({change.old.label} -> {change.new.label}): {change.reason}, "
                   f"health check of {group.where}")
