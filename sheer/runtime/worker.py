"""A worker process: one uvloop event loop serving every listener slot it inherited."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import encodings.idna  # noqa: F401  (address lookups encode host names with it; see the imports below)
import gc
import os
import signal
import socket
from collections.abc import Callable

import uvloop

from sheer.config.model import Config, HttpServer, Listen

# Imported here, not lazily: a worker that dropped to `user` may no longer be able to read the
# interpreter's files (a virtualenv under /root, say), so everything must be loaded before.
from sheer.io.context import Identity, WorkerContext
from sheer.io.http import HttpService
from sheer.io.logs import ErrorLogger, LogOpenError, open_log, reopen_logs
from sheer.io.service import Service
from sheer.io.stream_tcp import TcpStreamService
from sheer.io.stream_tls import TlsStreamService
from sheer.io.stream_udp import UdpStreamService
from sheer.io.tls import TlsListener
from sheer.runtime import proctitle
from sheer.runtime.board import HealthBoard
from sheer.runtime.context import worker_context
from sheer.runtime.limits import apply_nofile
from sheer.runtime.peerset import PeerSetBoard
from sheer.runtime.privileges import drop_privileges
from sheer.runtime.shared import SharedBoard

ListenKey = tuple[str, int, bool]

PR_SET_PDEATHSIG = 1


def listen_key(listen: Listen) -> ListenKey:
    return (listen.bind_host, listen.port, listen.udp)


def build_services(config: Config, sockets: dict[ListenKey, socket.socket],
                   ctx: WorkerContext) -> list[Service]:
    """One service per listening socket: the stream server or the http virtual hosts behind it."""
    services: list[Service] = []
    for server in (config.stream.servers if config.stream else ()):
        for listen in server.listens:
            sock = sockets[listen_key(listen)]
            if listen.udp:
                services.append(UdpStreamService(sock, server, ctx))
            elif server.tls is not None or server.proxy_ssl is not None:
                services.append(TlsStreamService(sock, server, ctx, listen.ssl))
            else:
                services.append(TcpStreamService(sock, server, ctx))
    if config.http:
        by_socket: dict[ListenKey, list[HttpServer]] = {}
        for http_server in config.http.servers:
            for listen in http_server.listens:
                by_socket.setdefault(listen_key(listen), []).append(http_server)
        for key, servers in by_socket.items():
            # the address's `default_server` first: it answers a Host no server_name matches
            default = [s for s in servers if any(listen.default_server and listen_key(listen) == key
                                                 for listen in s.listens)]
            ordered = default + [s for s in servers if s not in default]
            services.append(HttpService(sockets[key], ordered, ctx))
    return services


def run_worker(config: Config, sockets: dict[ListenKey, socket.socket], health: HealthBoard | None = None,
               shared: SharedBoard | None = None, identity: Identity | None = None,
               peers: PeerSetBoard | None = None, tls: dict[ListenKey, TlsListener] | None = None) -> int:
    """Entry point in the forked child. Returns the exit status."""
    die_with_parent()
    proctitle.child("worker process")
    # The master's signals stay blocked (its mask, inherited) until _serve has its handlers: a SIGQUIT
    # sent to a worker just forked (a stop right after a reload) waits for them rather than kill it.
    for signum in (signal.SIGHUP, signal.SIGUSR1, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    log = ErrorLogger(config.error_log)
    ctx = worker_context(config, log, health, shared, identity, peers)
    ctx.tls = tls
    apply_nofile(config, log)
    drop_privileges(config, log)
    uvloop.install()
    try:
        return asyncio.run(_serve(config, sockets, ctx))
    except Exception as exc:  # noqa: BLE001  (the last resort: a worker must say why it died)
        log.log("alert", f"worker process failed: {exc!r}")
        return 2


async def _serve(config: Config, sockets: dict[ListenKey, socket.socket], ctx: WorkerContext) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    mode: list[str] = []

    def request(kind: str) -> Callable[[], None]:
        def handler() -> None:
            mode.append(kind)
            stop.set()
        return handler

    loop.add_signal_handler(signal.SIGTERM, request("fast"))
    loop.add_signal_handler(signal.SIGINT, request("fast"))
    loop.add_signal_handler(signal.SIGQUIT, request("graceful"))
    loop.add_signal_handler(signal.SIGUSR1, reopen_logs)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # the master reloads; workers ignore HUP
    signal.pthread_sigmask(signal.SIG_SETMASK, set())

    for path in (*(config.stream.log_files if config.stream else ()),
                 *(config.http.log_files if config.http else ())):
        with contextlib.suppress(LogOpenError):
            open_log(path)          # every access_log file exists once started, used or not (as nginx's)
    services = build_services(config, sockets, ctx)
    for service in services:
        await service.start()
    # Everything loaded so far (modules, the config, the services) lives as long as the worker:
    # kept out of the collector's sight, full collections stop walking it again and again.
    gc.freeze()
    await stop.wait()
    if mode[0] == "fast":
        for service in services:
            service.abort()
        return _exiting()
    ctx.log.log("notice", "gracefully shutting down")
    proctitle.child("worker process is shutting down")
    for service in services:
        service.stop_accepting()
    # already shutting down: another SIGQUIT (the master's stop while this one drains) changes nothing,
    # as for nginx's exiting worker; SIG_DFL would kill it ("exited on signal 3", an alert). Blocked
    # meanwhile: removing the loop's handler puts SIG_DFL back for a moment.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGQUIT})
    loop.remove_signal_handler(signal.SIGQUIT)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGQUIT})
    stop.clear()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    drains = asyncio.gather(*(service.drain() for service in services))
    waiter = asyncio.ensure_future(stop.wait())
    # worker_shutdown_timeout (nginx's ngx_shutdown_timer_handler): what is still open then is closed
    await asyncio.wait([drains, waiter], timeout=config.worker_shutdown_timeout,
                       return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not drains.done():
        if not stop.is_set():
            ctx.log.log("notice", "shutdown timeout: closing the connections left")
        drains.cancel()
        for service in services:
            service.abort()
    with contextlib.suppress(asyncio.CancelledError):
        await drains
    ctx.log.log("notice", "exiting")
    return _exiting()


EXITING = {signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1}


def _exiting() -> int:
    """The last step before the loop closes, which puts SIG_DFL back for the signals it handled: they
    stay blocked from here on, so a stop that reaches this process now cannot kill it by its signal
    (nginx's exiting worker lets it pass)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, EXITING)
    return 0


def die_with_parent() -> None:
    """If the master is killed (SIGKILL), its workers must not keep serving an old config."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:
        os._exit(0)
