"""TCP stream proxy: a worker's listener, its accept loop and the one timer of its sessions.

What a session does is decided by sheer.core.tcp (next upstream, half-close, timeouts) and carried out
by sheer.io.tcp_relay (its sockets and bytes); this module accepts connections, keeps the sessions of
the listener for a drain or an abort, and sets one loop timer for the earliest deadline of them all.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from fcntl import ioctl
from termios import FIONBIO

from sheer.config.model import StreamServer
from sheer.core.tcp import TcpServer
from sheer.core.tcp_commands import Chosen
from sheer.io.accept import Acceptor
from sheer.io.context import WorkerContext
from sheer.io.logs import AccessLogger, LogLimiter
from sheer.io.slots import ConnectionSlots
from sheer.io.sockets import listening_on
from sheer.io.stream_targets import StreamTargets
from sheer.io.tcp_poller import WATCH, Poller
from sheer.io.tcp_relay import Connection

# ioctl(FIONBIO)'s int, in a bytearray: fcntl.ioctl() parses its argument as a writable buffer first, and
# for bytes that failed attempt costs an exception and its formatted message per connection
ON = bytearray(b"\x01\x00\x00\x00")

__all__ = ["Poller", "TcpStreamService"]


class TcpStreamService:
    def __init__(self, sock: socket.socket, server: StreamServer, ctx: WorkerContext) -> None:
        self.sock = sock
        self.server = server
        self.ctx = ctx
        self.log = ctx.error_log(server.error_log)
        self.access = AccessLogger(server.access_logs) if server.access_logs else None
        # the upstream's first byte is timed only where a log line shows it (sheer.io.tcp_relay)
        self.first_byte = any("upstream_first_byte_time" in log.format.template.variables
                              for log in server.access_logs)
        self.plain = not (server.proxy_upload_rate or server.proxy_download_rate or server.proxy_protocol)
        self.listen_name = str(server.listens[0]).removesuffix(" udp")
        host, port = listening_on(sock)
        preread = any(listen.proxy_protocol for listen in server.listens
                      if listen.port == port and listen.bind_host == host and not listen.udp)
        balancer = ctx.balancer_for(server.upstream) if server.upstream else None
        # `proxy_pass $variable`: an upstream block by name, an address or a name to resolve, per session
        self.targets = StreamTargets(ctx, server.resolver)
        self.shared = TcpServer(server, balancer, preread, self.targets.choose, info=self.log.enabled("info"))
        self.resolving: set[asyncio.Task[Chosen]] = set()
        self.family: int = sock.family
        self.loop = asyncio.get_running_loop()
        self.time = self.loop.time
        self.call_later = self.loop.call_later
        self.poller = Poller.of(self.loop)
        self.sessions: set[Connection] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.acceptor: Acceptor | None = None
        self.slots: ConnectionSlots = None  # type: ignore[assignment]  # set by start()
        self.short: LogLimiter = None  # type: ignore[assignment]  # set by start()
        self.per_session = 1 if server.return_value is not None else 2     # worker_connections taken
        self.info = self.log.enabled("info")
        self._drained: asyncio.Future[None] | None = None

    async def start(self) -> None:
        sock = self.sock
        # Accepted sockets inherit TCP_NODELAY from the listener (the kernel copies its TCP state):
        # set once here, it is not a setsockopt() per connection (nginx's tcp_nodelay, on by default).
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.slots = self.ctx.slots()
        self.short = LogLimiter(self.log, self.loop.call_later, self.loop.time)
        self.acceptor = Acceptor(self.loop, sock, self.slots, self.log, self.listen_name, self._accepted,
                                 need=self.per_session)
        self.acceptor.start()

    def _accepted(self, fd: int, peer: tuple[str, int]) -> None:
        """A connection with its slot (sheer.io.accept); a proxied one takes a second for its upstream
        connection, as nginx counts both against worker_connections."""
        slots = self.slots
        if self.per_session == 2:
            if slots.used < slots.roomy:        # ConnectionSlots.take's common case, inline
                slots.used += 1
            elif not slots.take():
                os.close(fd)
                slots.release()
                return
        # accept4() here cannot ask for SOCK_NONBLOCK (Python passes SOCK_CLOEXEC only): one ioctl
        try:
            ioctl(fd, FIONBIO, ON)
        except OSError:
            os.close(fd)
            slots.release(self.per_session)
            return
        session = Connection(self, fd, peer, time.time())
        self.sessions.add(session)
        if self.info:           # nginx's first line of a session, at info level
            self.log.log("info", f"client {_address(peer)} connected to {self.listen_name}")
        poller = self.poller                    # Poller.add, inline
        poller.handlers[fd] = session.client_event
        poller.epoll.register(fd, WATCH)
        try:
            session.run(session.core.accepted(self.time()))
        except Exception as exc:  # noqa: BLE001 -- a bug costs this session, not the accept loop
            session.crashed(exc)

    def resolve(self, session: Connection, value: str) -> None:
        """A session's `Resolve`: the lookup runs as a task, and its answer goes back to the session."""
        task = self.loop.create_task(self.targets.resolve(value))
        self.resolving.add(task)
        task.add_done_callback(lambda done: self._resolved(session, done))

    def _resolved(self, session: Connection, task: asyncio.Task[Chosen]) -> None:
        self.resolving.discard(task)
        if task.cancelled():
            return
        try:
            session.run(session.core.chosen(task.result(), self.time()))
        except Exception as exc:  # noqa: BLE001 -- a bug costs this session, not the others
            session.crashed(exc)

    def out_of_descriptors(self, level: str, line: str) -> None:
        """No descriptor for an upstream socket: said once a second with a count, and no one else
        is accepted (new clients wait in the listen queue) until a connection gives its back."""
        self.short.report(level, line)
        if self.acceptor is not None and self.acceptor.accepting:
            self.acceptor.hold()

    def stop_accepting(self) -> None:
        """Stop for good, closing this worker's copy of the listener: once the master has closed
        its own, new clients are refused instead of queueing on a socket nobody serves."""
        if self.acceptor is not None and self.acceptor.accepting:
            self.acceptor.stop()
            self.sock.close()

    async def drain(self) -> None:
        if self.sessions:
            self._drained = self.loop.create_future()
            await self._drained

    def abort(self) -> None:
        self.stop_accepting()
        now = self.time()
        for session in list(self.sessions):
            session.run(session.core.aborted(now))

    # The sessions' deadlines (sheer.core.deadlines): one loop timer, for the earliest.

    def arm(self) -> None:
        deadlines = self.shared.deadlines
        at = deadlines.next_deadline()
        if self._timer is not None:
            self._timer.cancel()
        deadlines.armed = at
        self._timer = self.loop.call_at(at, self._expire) if at is not None else None

    def _expire(self) -> None:
        self._timer = None
        self.shared.deadlines.armed = None
        now = self.time()
        for session in self.shared.deadlines.due(now):
            assert isinstance(session, Connection)
            try:
                session.run(session.core.tick(now, session.moved))
            except Exception as exc:  # noqa: BLE001 -- a bug costs this session, not the others due
                session.crashed(exc)
        self.arm()

    def closed(self, session: Connection) -> None:
        sessions = self.sessions
        if session in sessions:
            sessions.discard(session)
            slots = self.slots
            if slots.free_waiters:
                slots.release(self.per_session)
            else:
                slots.used -= self.per_session     # ConnectionSlots.release with no one to wake, inline
        if not sessions and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)


def _address(peer: tuple[str, int]) -> str:
    return f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"
