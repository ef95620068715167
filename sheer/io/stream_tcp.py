"""TCP stream proxy: a worker's listener, its accept loop and the one timer of its sessions.

What a session does is decided by sheer.core.tcp (next upstream, half-close, timeouts) and carried out
by sheer.io.tcp_relay (its sockets and bytes); this module accepts connections, keeps the sessions of
the listener for a drain or an abort, and sets one loop timer for the earliest deadline of them all.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time

from sheer.config.model import StreamServer
from sheer.core.tcp import TcpServer
from sheer.io.context import WorkerContext
from sheer.io.logs import AccessLogger
from sheer.io.tcp_poller import Poller
from sheer.io.tcp_relay import Connection

ACCEPT_BATCH = 16        # connections accepted per readiness event of a listener
_AGAIN = (BlockingIOError, InterruptedError)

__all__ = ["Poller", "TcpStreamService"]


class TcpStreamService:
    def __init__(self, sock: socket.socket, server: StreamServer, ctx: WorkerContext) -> None:
        self.sock = sock
        self.server = server
        self.ctx = ctx
        self.log = ctx.error_log(server.error_log)
        self.access = AccessLogger(server.access_logs)
        self.listen_name = str(server.listens[0]).removesuffix(" udp")
        host, port = sock.getsockname()[:2]
        preread = any(listen.proxy_protocol for listen in server.listens
                      if listen.port == port and listen.bind_host == host and not listen.udp)
        balancer = ctx.balancer_for(server.upstream) if server.upstream else None
        self.shared = TcpServer(server, balancer, preread)
        self.family = socket.AddressFamily(sock.family)
        self.loop = asyncio.get_running_loop()
        self.poller = Poller.of(self.loop)
        self.sessions: set[Connection] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.accepting = False
        self._resume: asyncio.TimerHandle | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        self.sock.setblocking(False)
        self.accepting = True
        self.loop.add_reader(self.sock.fileno(), self._accept)

    def _accept(self) -> None:
        listener = self.sock
        family = self.family
        for _ in range(ACCEPT_BATCH):
            try:
                fd, peer = listener._accept()  # type: ignore[attr-defined]  # socket.accept() minus its enum conversions
            except _AGAIN:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # nginx: stop accepting for a moment rather than spin on a listener that stays readable
                    self.log.log("alert", f"accept4() failed ({exc.errno}: {exc.strerror}) while accepting "
                                          f"new connection on {self.listen_name}")
                    self._pause_accepting(0.5)
                return   # ECONNABORTED and the like: that connection is gone, the next event brings more
            self._open(socket.socket(family, socket.SOCK_STREAM, 0, fd), peer)

    def _open(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        conn.setblocking(False)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:        # reset before we got to it
            conn.close()
            return
        session = Connection(self, conn, peer, time.time())
        self.opened(session)
        self.poller.add(conn.fileno(), session.client_event)
        try:
            session.run(session.core.accepted(self.loop.time()))
        except Exception as exc:  # noqa: BLE001 -- a bug costs this session, not the accept loop
            session.crashed(exc)

    def _pause_accepting(self, seconds: float) -> None:
        if self.accepting:
            self.loop.remove_reader(self.sock.fileno())
            self._resume = self.loop.call_later(seconds, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._resume = None
        if self.accepting:
            self.loop.add_reader(self.sock.fileno(), self._accept)

    def stop_accepting(self) -> None:
        """Stop for good, closing this worker's copy of the listener: once the master has closed
        its own, new clients are refused instead of queueing on a socket nobody serves."""
        if self.accepting:
            self.accepting = False
            self.loop.remove_reader(self.sock.fileno())
            if self._resume is not None:
                self._resume.cancel()
            self.sock.close()

    async def drain(self) -> None:
        await self._idle.wait()

    def abort(self) -> None:
        self.stop_accepting()
        now = self.loop.time()
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
        now = self.loop.time()
        for session in self.shared.deadlines.due(now):
            assert isinstance(session, Connection)
            try:
                session.run(session.core.tick(now))
            except Exception as exc:  # noqa: BLE001 -- a bug costs this session, not the others due
                session.crashed(exc)
        self.arm()

    def opened(self, session: Connection) -> None:
        self.sessions.add(session)
        self._idle.clear()

    def closed(self, session: Connection) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._idle.set()
