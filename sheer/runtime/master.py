"""The master process: owns the listening sockets, forks workers, handles signals and reloads.

Signals, as in nginx: TERM/INT stop fast, QUIT drains and stops, HUP reloads (the new
configuration is checked first; a bad one is refused and the old workers keep serving),
USR1 reopens log files.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sheer import NGINX_VERSION, __version__
from sheer.config import Config, ConfigError
from sheer.config.errors import unexpected
from sheer.core.fastpath import services as dsr_services
from sheer.io.context import Identity
from sheer.io.logs import ErrorLogger, LogOpenError, reopen_logs
from sheer.io.sockets import ListenError, ensure_unclaimed, listener, remove_unix_socket
from sheer.io.tls import TlsListener
from sheer.io.tls import listeners as tls_listeners
from sheer.runtime import proctitle
from sheer.runtime.announce import AnnounceError, Announcer
from sheer.runtime.board import HealthBoard
from sheer.runtime.checker import run_checker, title
from sheer.runtime.checks import check
from sheer.runtime.limits import warn_descriptors
from sheer.runtime.notify import Notifier
from sheer.runtime.peerset import PeerSetBoard
from sheer.runtime.privileges import PrivilegeError, resolve_user
from sheer.runtime.shared import SharedBoard
from sheer.runtime.worker import ListenKey, listen_key, run_worker

# SIGIO: the shared board's doorbell (a peer's health or the API changed: announce again or not)
HANDLED = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD, signal.SIGUSR1,
           signal.SIGIO}
STOP_GRACE = 5.0


class StartupError(Exception):
    """The master could not start: the message says why and, where possible, the fix."""


@dataclass
class Worker:
    pid: int
    slot: int
    generation: int
    row: int = -1              # its row of counters on the shared board
    started: float = field(default_factory=time.monotonic)


CHECKER = -1     # the slot of the generation's helper process: health checks, resolver (runtime/checker.py)

# A worker that exits with FAILED this soon after starting failed to start (its log says why):
# respawning it would only loop. One killed by a signal (OOM killer, kill -9) is respawned.
EARLY_DEATH = 2.0
FAILED = 2


@dataclass
class Master:
    config: Config
    reload_config: Callable[[], Config]
    log: ErrorLogger = field(init=False)
    slots: dict[ListenKey, list[socket.socket]] = field(default_factory=dict)
    workers: dict[int, Worker] = field(default_factory=dict)
    generation: int = 0
    health: HealthBoard | None = None      # the current generation's shared peer health
    peers: PeerSetBoard | None = None      # the current generation's names resolved at run time
    stopping: bool = False
    status: int = 0
    notify: Notifier = field(default_factory=Notifier)
    shared: SharedBoard = field(init=False)   # counters and the API's changes, for the master's whole life
    load_time: float = field(default_factory=time.time)
    # `listen ... ssl` contexts, made here before the fork: the workers share their ticket keys
    tls: dict[ListenKey, TlsListener] = field(default_factory=dict)
    announcer: Announcer = field(init=False)
    drain_at: float | None = None          # -s quit with VIPs: when the workers start draining

    def __post_init__(self) -> None:
        self.shared = SharedBoard(self.config)
        try:
            self.log = ErrorLogger(self.config.error_log)
        except LogOpenError as exc:
            raise StartupError(str(exc)) from None
        self.announcer = Announcer(self.log)

    # --- announcing the VIPs (sheer.runtime.announce) ---------------------------------------

    def announce(self) -> None:
        """Announce each VIP while this instance can serve it; withdraw it when it cannot."""
        serving = bool(self.slots) and any(w.slot != CHECKER and w.generation == self.generation
                                           for w in self.workers.values())
        self.announcer.log = self.log
        self.announcer.update(self.config, self.health, self.shared, self.peers, serving,
                              "stopping" if self.stopping else None)

    # --- sockets -------------------------------------------------------------------------

    def open_listeners(self, config: Config) -> None:
        """Make sure every listen address has one socket per worker slot; close unused ones."""
        wanted = {listen_key(listen): listen for listen in config.listens}
        created: list[socket.socket] = []
        try:
            for key, listen in wanted.items():
                have = self.slots.setdefault(key, [])
                if not have:
                    ensure_unclaimed(listen)   # another process on the address: nginx's bind() error
                while len(have) < config.workers:
                    # a unix-domain path has one socket, which every worker slot shares
                    sock = have[0] if have and listen.unix else listener(listen)
                    if sock not in created and not (have and listen.unix):
                        created.append(sock)
                    have.append(sock)
        except Exception as exc:  # noqa: BLE001 - ListenError, or anything else: undo, then say it
            for sock in created:
                if sock.family == socket.AF_UNIX:
                    self._remove_unix(sock, quietly=True)    # the file this attempt made
                sock.close()
                for have in self.slots.values():
                    if sock in have:
                        have.remove(sock)
            for key in [key for key, have in self.slots.items() if not have]:
                del self.slots[key]
            raise StartupError(str(exc) if isinstance(exc, ListenError) else unexpected(exc)) from None
        for key in list(self.slots):
            if key not in wanted:
                self._close(self.slots.pop(key))
            else:
                kept = self.slots[key][:config.workers]
                self._close([sock for sock in self.slots[key][config.workers:] if sock not in kept])
                del self.slots[key][config.workers:]

    # --- workers -------------------------------------------------------------------------

    def spawn(self, slot: int) -> None:
        sockets = {key: socks[slot] for key, socks in self.slots.items()}
        row = self.shared.take_row()
        pid = os.fork()
        if pid == 0:
            status = FAILED
            try:
                identity = Identity(self.generation, self.load_time, row)
                if slot == CHECKER:
                    assert self.health is not None
                    for socks in self.slots.values():
                        for sock in socks:
                            sock.close()
                    status = run_checker(self.config, self.health, self.shared, identity, self.peers)
                else:
                    status = run_worker(self.config, sockets, self.health, self.shared, identity, self.peers,
                                        self.tls)
            finally:
                os._exit(status)
        self.workers[pid] = Worker(pid, slot, self.generation, row)

    def start_health(self, config: Config) -> None:
        """New boards for a new generation, and its helper process when the config has active
        checks, names to re-resolve (the peers the last generation resolved are kept), or DSR
        servers whose kernel fast path it feeds (sheer.runtime.fastpath)."""
        self.health = HealthBoard(config, self.health)
        self.peers = PeerSetBoard(config, self.peers)
        self.shared.generation = self.generation
        # its checker clears it once the kernel's table follows its health checks (or nothing is fed)
        self.shared.kernel_pending = bool(dsr_services(config))
        if self.health or self.peers or dsr_services(config):
            self.spawn(CHECKER)

    def start(self) -> None:
        proctitle.master()
        try:
            resolve_user(self.config)
        except PrivilegeError as exc:
            raise StartupError(str(exc)) from None
        try:
            self.tls = self.tls or tls_listeners(self.config)   # the command line's (made before daemonizing)
        except ConfigError as exc:
            raise StartupError(str(exc)) from None
        self.open_listeners(self.config)
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        self.shared.bell.own()
        try:
            self.announcer.configure(self.config)
        except AnnounceError as exc:
            self.close_listeners()
            raise StartupError(str(exc)) from None
        self.write_pid()
        self.start_health(self.config)
        warn_descriptors(self.config, self.log)
        for slot in range(self.config.workers):
            self.spawn(slot)
        self.announce()
        # nginx's first notices name its version; sheer's names both, for whoever reads a log as nginx's
        self.log.log("notice", f"sheer/{__version__} (the configuration and logs of nginx/{NGINX_VERSION})")
        self.log.log("notice", f"sheer started: {self.config.workers} worker(s), "
                               f"{len(self.slots)} listener(s), configuration {self.config.file}")
        self.notify.ready(self.serving())

    def serving(self) -> str:
        return f"generation {self.generation}: {self.config.workers} worker(s), {len(self.slots)} listener(s)"

    def signal_workers(self, signum: int, generation: int | None = None) -> None:
        for worker in list(self.workers.values()):
            if generation is None or worker.generation == generation:
                try:
                    os.kill(worker.pid, signum)
                except ProcessLookupError:
                    pass

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            self.shared.release_row(worker.row)
            if os.WIFSIGNALED(status) or (os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0):
                how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                       else f"code {os.WEXITSTATUS(status)}")
                kind = title(self.health, self.peers) if worker.slot == CHECKER else "worker"
                self.log.log("alert", f"{kind} process {pid} exited on {how}")
                if self.stopping or worker.generation != self.generation:
                    continue
                self.shared.count_respawn()
                failed_to_start = os.WIFEXITED(status) and os.WEXITSTATUS(status) == FAILED
                if failed_to_start and time.monotonic() - worker.started < EARLY_DEATH:
                    self.log.log("emerg", "a worker process failed right after starting (see the lines "
                                          "above); stopping instead of respawning it in a loop")
                    self.stopping = True
                    self.status = 1
                    self.signal_workers(signal.SIGTERM)
                    continue
                self.spawn(worker.slot)

    def reload(self) -> None:
        self.notify.reloading()
        refused = self._reload()
        self.notify.ready(f"reload refused ({refused}); {self.serving()}" if refused else self.serving())

    def _reload(self) -> str | None:
        """None when the new configuration serves; why it was refused otherwise."""
        self.log.log("notice", "reconfiguring")
        try:
            config = self.reload_config()
            log = ErrorLogger(config.error_log)
            resolve_user(config)
            # Everything `sheer -t` checks (every log file can be opened, ...): a new worker that
            # cannot start would otherwise stop the whole server instead of leaving the old one serving.
            problems = check(config, tls=False)
            tls = tls_listeners(config) if not problems else {}   # certificates and keys read anew
        except (ConfigError, LogOpenError, PrivilegeError) as exc:
            self.log.log("emerg", f"{exc}; the new configuration is refused, the old one keeps serving")
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - whatever a file can bring, the master keeps serving
            why = f"reading the new configuration failed: {unexpected(exc)}"
            self.log.log("emerg", f"{why}; the new configuration is refused, the old one keeps serving")
            return why
        if problems:
            for problem in problems:
                self.log.log("emerg",
                             f"{problem}; the new configuration is refused, the old one keeps serving")
            return str(problems[0])
        old_generation = self.generation
        try:
            previous = self.config
            self.announcer.configure(config)
            self.config = config
            self.open_listeners(config)
        except Exception as exc:  # noqa: BLE001 - StartupError, or anything else: the old one serves on
            self.config = previous
            self.announcer.configure(previous)
            why = str(exc) if isinstance(exc, StartupError) else unexpected(exc)
            self.log.log("emerg", f"{why}; the new configuration is refused, the old one keeps serving")
            return why
        self.log = log
        self.tls = tls
        self.generation += 1
        self.load_time = time.time()
        self.shared.plan(config)
        self.start_health(config)
        warn_descriptors(config, self.log)
        for slot in range(config.workers):
            self.spawn(slot)
        self.signal_workers(signal.SIGQUIT, old_generation)
        self.announce()
        return None

    # --- main loop -----------------------------------------------------------------------

    def run(self) -> int:
        self.start()
        deadline: float | None = None
        try:
            while True:
                if self.stopping and not self.workers:
                    return self.status
                wake = min((t for t in (deadline, self.drain_at) if t is not None), default=None)
                timeout = 1.0 if wake is None else max(0.05, wake - time.monotonic())
                info = signal.sigtimedwait(HANDLED, timeout)
                if self.drain_at is not None and time.monotonic() >= self.drain_at:
                    self.drain()
                if info is None:
                    if deadline is not None and time.monotonic() >= deadline:
                        self.signal_workers(signal.SIGKILL)
                        deadline = None
                    self.announce()
                    continue
                signum = info.si_signo
                if signum == signal.SIGCHLD:
                    self.reap()
                    self.announce()
                elif signum == signal.SIGIO:
                    self.shared.bell.drain()
                    self.announce()
                elif signum in (signal.SIGTERM, signal.SIGINT):
                    self.notify.stopping("stopping")
                    self.stopping = True
                    self.announcer.withdraw_all("stopping")
                    self.signal_workers(signal.SIGTERM)
                    deadline = time.monotonic() + STOP_GRACE
                elif signum == signal.SIGQUIT and not self.stopping:
                    self.notify.stopping("gracefully shutting down: open connections finish")
                    self.stopping = True
                    delay = self.config.announce.withdraw_delay if self.announcer.vips else 0.0
                    # First the routers forget this instance, then its connections drain: the VIP's
                    # new flows go to the instances still announcing it while these finish.
                    self.announcer.withdraw_all("gracefully shutting down: withdrawn before the connections "
                                                f"drain (in {delay:g}s)")
                    self.drain_at = time.monotonic() + delay
                    if delay <= 0:
                        self.drain()
                elif signum == signal.SIGHUP and not self.stopping:
                    self.reload()
                elif signum == signal.SIGUSR1:
                    reopen_logs()
                    self.signal_workers(signal.SIGUSR1)
        finally:
            self.remove_pid()
            self.close_listeners()
            self.announcer.close()

    def drain(self) -> None:
        """-s quit, once the VIPs are withdrawn: the workers finish their connections and stop."""
        self.drain_at = None
        self.signal_workers(signal.SIGQUIT)
        # The draining workers stop accepting; once the master lets go of the listeners too, new
        # clients are refused instead of waiting in a backlog nobody will ever accept from.
        self.close_listeners()

    def close_listeners(self) -> None:
        for socks in self.slots.values():
            self._close(socks)
        self.slots.clear()

    def _close(self, socks: list[socket.socket]) -> None:
        """Close listening sockets; a unix-domain one's file goes with it (nginx removes it at exit
        and when a reload drops the address, and keeps it across a reload that keeps it)."""
        for sock in dict.fromkeys(socks):
            if sock.family == socket.AF_UNIX and sock.fileno() >= 0:
                self._remove_unix(sock)
            sock.close()

    def _remove_unix(self, sock: socket.socket, quietly: bool = False) -> None:
        try:
            path = sock.getsockname()
        except OSError:
            return
        if not isinstance(path, str) or not path or path.startswith("\0"):
            return
        if not quietly and not self.stopping:
            self.log.log("warn", f"deleting socket {path}")     # nginx's line when a reload drops it
        problem = remove_unix_socket(path)
        if problem is not None:
            self.log.log("emerg", problem)

    def write_pid(self) -> None:
        if self.config.pid:
            try:
                with open(self.config.pid, "w") as handle:
                    handle.write(f"{os.getpid()}\n")
            except OSError as exc:
                raise StartupError(f'open() "{self.config.pid}" failed ({exc.errno}: {exc.strerror})') \
                    from None

    def remove_pid(self) -> None:
        if self.config.pid:
            try:
                os.unlink(self.config.pid)
            except OSError:
                pass
