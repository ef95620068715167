"""The generation's helper process, forked by the master next to the workers: the health checks
and the resolver task (sheer.runtime.resolver), each once per generation, never per worker.

Each checked peer is probed once here, and its state is published on the shared `HealthBoard`
that every worker's balancer reads; peers the resolver adds are checked from the moment they
come, and no longer once they go. The master respawns the process if it dies; the new one
resumes from the states and addresses on the boards. The same process feeds the kernel's DSR
fast path (sheer.runtime.fastpath): every change of the board reaches the kernel's table too, so
both paths skip a down peer (it runs even without checks or names when the configuration has DSR
servers, for the API's changes and the counters).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import uvloop

from sheer.config.health import HttpMatch
from sheer.config.model import Config, UpstreamServer
from sheer.core.fastpath import services as dsr_services
from sheer.core.hcmatch import Verdict
from sheer.core.health import Changed, Health, Outcome, PeerHealth
from sheer.core.peers import PEERS_PER_NAME, slot_server
from sheer.core.stats import Block
from sheer.io.context import Identity
from sheer.io.logs import ErrorLogger, reopen_logs
from sheer.io.probes import http_probe, tcp_probe, udp_probe
from sheer.runtime import proctitle
from sheer.runtime.board import CheckedGroup, HealthBoard
from sheer.runtime.peerset import Name, PeerSetBoard
from sheer.runtime.privileges import drop_privileges
from sheer.runtime.resolver import ResolverTask
from sheer.runtime.shared import SharedBoard
from sheer.runtime.worker import EXITING, die_with_parent

if TYPE_CHECKING:
    from sheer.runtime.fastpath import Feeder


def title(board: HealthBoard | None, peers: PeerSetBoard | None) -> str:
    """What `ps` and the master's log call the helper: "health checker", "resolver", or both."""
    roles = [role for role, there in (("health checker", board), ("resolver", peers)) if there]
    return " and ".join(roles) or "health checker"


def run_checker(config: Config, board: HealthBoard, shared: SharedBoard | None = None,
                identity: Identity | None = None, peers: PeerSetBoard | None = None) -> int:
    """Entry point in the forked child. Returns the exit status."""
    die_with_parent()
    proctitle.child(title(board, peers))
    # signals stay blocked until _check_all has its handlers (as a worker's: sheer.runtime.worker)
    for signum in (signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    log = ErrorLogger(config.error_log)
    feeds = bool(dsr_services(config))
    if feeds:
        # imported only where the kernel is fed (netlink and nftables modules), and before dropping to
        # `user`, who may not read sheer's own files
        from sheer.runtime.fastpath import Feeder
    # Probes need no privilege (they come from the proxy's own address); feeding the kernel's fast
    # path needs CAP_NET_ADMIN.
    drop_privileges(config, log, admin=feeds)
    uvloop.install()
    identity = identity or Identity()
    row = identity.row
    try:
        shared = shared or SharedBoard(config)
        resolver = ResolverTask(config, peers, shared, row, log) if peers else None
        feeder = Feeder(config, board, shared, log, identity.generation) if feeds else None
        asyncio.run(_check_all(board, log, HealthCounters(shared, row), resolver, feeder))
    except Exception as exc:  # noqa: BLE001  (the last resort: the helper must say why it died)
        log.log("alert", f"{title(board, peers)} process failed: {exc!r}")
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


class Checks:
    """The probe loops, one per checked peer, started and stopped as peers come and go."""

    def __init__(self, board: HealthBoard, log: ErrorLogger, counters: HealthCounters,
                 tasks: asyncio.TaskGroup, changed: Callable[[], None] | None = None) -> None:
        self.board = board
        self.log = log
        self.counters = counters
        self.tasks = tasks
        self.changed = changed      # the kernel's fast path follows the board (sheer.runtime.fastpath)
        self.running: dict[tuple[int, int], asyncio.Task[None]] = {}
        self.unreported = 0
        self.first_round = asyncio.Event()      # every check started at first has a result

    def start(self, group: CheckedGroup, index: int, server: UpstreamServer) -> None:
        if not server.down:
            self.unreported += 1
            self.running[(group.offset, index)] = self.tasks.create_task(
                _check_peer(self.board, group, index, server, self.log, self.counters, self.changed,
                            self.reported))

    def reported(self) -> None:
        self.unreported -= 1
        if self.unreported <= 0:
            self.first_round.set()

    def follow(self, name: Name, position: int, server: UpstreamServer | None) -> None:
        """The resolver put `server` at `position` of an upstream (None: the peer there is gone)."""
        for group in self.board.groups:
            if group.upstream is not name.upstream:
                continue
            task = self.running.pop((group.offset, position), None)
            if task is not None:
                task.cancel()
            if server is not None:
                self.board.set(group, position, Health.CHECKING if group.check.mandatory else Health.UP)
                self.start(group, position, server)
            if self.changed is not None:
                self.changed()


async def _check_all(board: HealthBoard, log: ErrorLogger, counters: HealthCounters,
                     resolver: ResolverTask | None = None, feeder: Feeder | None = None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, reopen_logs)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    try:
        async with asyncio.TaskGroup() as tasks:
            def changed() -> None:
                if feeder is not None:
                    feeder.schedule()                 # first: the master waits for the kernel's table
                counters.shared.bell.ring()           # the master decides its announcements again

            checks = Checks(board, log, counters, tasks, changed)
            for group in board.groups:
                for index, server in enumerate(group.upstream.servers):
                    checks.start(group, index, server)
            if checks.unreported == 0:
                checks.first_round.set()
            if feeder is not None:
                limit = max((group.check.timeout for group in board.groups), default=0.0) + 0.5
                tasks.create_task(_feed(feeder, checks.first_round, limit, log))
            if resolver is not None:
                resolver.follow = checks.follow
                for name in resolver.board.names:      # peers a previous generation found
                    for slot in range(PEERS_PER_NAME):
                        address = resolver.board.entry(name, slot)[0]
                        if address is not None:
                            checks.follow(name, name.position(slot), slot_server(name.server, address))
                tasks.create_task(resolver.run())
            await stop.wait()
            raise _Stopped
    except* _Stopped:
        pass
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, EXITING)     # the loop's close puts SIG_DFL back


async def _feed(feeder: Feeder, first_round: asyncio.Event, limit: float, log: ErrorLogger) -> None:
    """Feed the fast path once the first round of checks has answered (at most `limit` seconds): the
    first results reach the board, and the master's announcement, without waiting for the whole
    table to be written (a second or so for a maglev table)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit):
            await first_round.wait()
    try:
        feeder.start()
    except Exception as exc:  # noqa: BLE001  (the checks run whatever happens to the fast path)
        log.log("alert", f"the fast path cannot be fed: {exc!r}")
        feeder.pending = False
        feeder.settled()
    await feeder.run()


class _Stopped(Exception):
    """Ends the task group: every probe loop is cancelled."""


async def _check_peer(board: HealthBoard, group: CheckedGroup, index: int, server: UpstreamServer,
                      log: ErrorLogger, counters: HealthCounters,
                      changed: Callable[[], None] | None = None,
                      reported: Callable[[], None] | None = None) -> None:
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
            if changed is not None:
                changed()
        if reported is not None:
            reported()
            reported = None


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
