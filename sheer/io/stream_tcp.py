"""TCP stream proxy: a worker's listener, its accept loop and the one timer of its sessions.

What a session does is decided by sheer.core.tcp (next upstream, half-close, timeouts) and carried out
by sheer.io.tcp_relay (its sockets and bytes); this module accepts connections, keeps the sessions of
the listener for a drain or an abort, and sets one loop timer for the earliest deadline of them all.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from fcntl import ioctl
from termios import FIONBIO

from sheer.config.model import StreamServer
from sheer.core.tcp import TcpServer
from sheer.io.context import WorkerContext
from sheer.io.logs import AccessLogger
from sheer.io.tcp_poller import Poller
from sheer.io.tcp_relay import Connection

ACCEPT_BATCH = 16        # connections accepted per readiness event of a listener
ON = b"\x01\x00\x00\x00"     # ioctl(FIONBIO)'s int
_AGAIN = (BlockingIOError, InterruptedError)

__all__ = ["Poller", "TcpStreamService"]


class TcpStreamService:
    def __init__(self, sock: socket.socket, server: StreamServer, ctx: WorkerContext) -> None:
        self.sock = sock
        self.server = server
        self.ctx = ctx
        self.log = ctx.error_log(server.error_log)
        self.access = AccessLogger(server.access_logs) if server.access_logs else None
        self.listen_name = str(server.listens[0]).removesuffix(" udp")
        host, port = sock.getsockname()[:2]
        preread = any(listen.proxy_protocol for listen in server.listens
                      if listen.port == port and listen.bind_host == host and not listen.udp)
        balancer = ctx.balancer_for(server.upstream) if server.upstream else None
        self.shared = TcpServer(server, balancer, preread)
        self.family: int = sock.family
        self.loop = asyncio.get_running_loop()
        self.time = self.loop.time
        self.poller = Poller.of(self.loop)
        self.sessions: set[Connection] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.accepting = False
        self._resume: asyncio.TimerHandle | None = None
        self._drained: asyncio.Future[None] | None = None

    async def start(self) -> None:
        sock = self.sock
        sock.setblocking(False)
        # Accepted sockets inherit TCP_NODELAY from the listener (the kernel copies its TCP state):
        # set once here, it is not a setsockopt() per connection (nginx's tcp_nodelay, on by default).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.accepting = True
        self.loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        listener = self.sock
        for _ in range(ACCEPT_BATCH):
            try:
                fd, peer = listener._accept()  # type: ignore[attr-defined]  # accept4(), a descriptor: no socket object
            except _AGAIN:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # nginx: stop accepting for a moment rather than spin on a listener that stays readable
                    self.log.log("alert", f"accept4() failed ({exc.errno}: {exc.strerror}) while accepting "
                                          f"new connection on {self.listen_name}")
                    self._pause_accepting(0.5)
                return   # ECONNABORTED and the like: that connection is gone, the next event brings more
            # accept4() here cannot ask for SOCK_NONBLOCK (Python passes SOCK_CLOEXEC only): one ioctl
            try:
                ioctl(fd, FIONBIO, ON)
            except OSError:
                os.close(fd)
                continue
            session = Connection(self, fd, peer, time.time())
            self.sessions.add(session)
            self.poller.add(fd, session.client_event)
            try:
                session.run(session.core.accepted(self.time()))
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
        sessions.discard(session)
        if not sessions and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
