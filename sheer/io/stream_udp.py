"""UDP stream proxy: datagrams from a listener to per-session connected upstream sockets and back.

Hot path: one readiness callback drains up to BATCH datagrams per wake-up with plain
recvfrom/send calls; the decisions (which session, is it done, did it time out) come from
`sheer.core.udp`.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import socket
import struct
import time

from sheer.config.model import StreamServer
from sheer.core import proxy_protocol
from sheer.core.access import FORBIDDEN, allowed
from sheer.core.balancers import request_key
from sheer.core.bind import PLUMBING_HINT, BindValueError, bind_to
from sheer.core.udp import UdpSession, UdpSessionTable
from sheer.core.variables import render, render_bytes
from sheer.io.context import WorkerContext
from sheer.io.counting import peer_columns, stream_zone
from sheer.io.dsr import DsrSender
from sheer.io.logs import AccessLogger, LogLimiter
from sheer.io.sockets import IP_PKTINFO, IPV6_PKTINFO, BindError, bound_socket, family_of
from sheer.io.stream_vars import StreamVariables
from sheer.io.udp_flow import UdpFlow

BATCH = 64
MAX_DATAGRAM = 65535
_CMSG_SPACE = socket.CMSG_SPACE(max(12, 20))


class UdpStreamService:
    def __init__(self, sock: socket.socket, server: StreamServer, ctx: WorkerContext) -> None:
        self.sock = sock
        self.server = server
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        self.log = ctx.error_log(server.error_log)
        self.verbose = self.log.enabled("info")    # a session's info lines are worth formatting
        self.access = AccessLogger(server.access_logs)
        self.balancer = ctx.balancer_for(server.upstream) if server.upstream else None
        listen = server.listens[0]
        self.listen_name = str(listen).removesuffix(" udp")
        self.wildcard = next(l for l in server.listens if l.udp).is_wildcard
        self.family = sock.family
        self.local_addr = sock.getsockname()
        self.table = UdpSessionTable(server.proxy_timeout, max(1, self.ctx.config.worker_connections),
                                     server.proxy_responses, server.proxy_requests)
        self.timer: asyncio.TimerHandle | None = None
        self.accepting = False
        self._idle = asyncio.Event()     # drain()'s: set once the last session is over
        self.draining = False
        # what a flood of datagrams could repeat: one line a second each, with how many more there were
        self._limited: dict[str, LogLimiter] = {}
        self.transparent = server.proxy_bind is not None and server.proxy_bind.transparent
        layout = ctx.shared.layout
        self.row = ctx.counters
        self.zone = stream_zone(layout, server.status_zone)
        self.peer_columns = peer_columns(layout, server.upstream) if server.upstream else ()
        self.errors = layout
        self.dsr: DsrSender | None = None
        if server.dsr:
            assert self.balancer is not None
            self.dsr = DsrSender(self.balancer, self.log, self.listen_name, self.access, ctx)

    # --- Service -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.dsr is not None:
            self.dsr.open(self.sock.family)
            self.loop.add_reader(self.sock.fileno(), self.dsr.on_readable, self.sock, self.loop)
        else:
            self.loop.add_reader(self.sock.fileno(), self.on_client_readable)
        self.accepting = True

    def stop_accepting(self) -> None:
        if self.accepting:
            self.loop.remove_reader(self.sock.fileno())
            self.accepting = False

    async def drain(self) -> None:
        if len(self.table):
            self.draining = True
            await self._idle.wait()

    def abort(self) -> None:
        self.stop_accepting()
        for session in self.table:
            self.finish(session, status=200, failed=False)
        if self.dsr is not None:
            self.dsr.close()

    # --- client -> upstream --------------------------------------------------------------

    def on_client_readable(self) -> None:
        sock = self.sock
        now = self.loop.time()
        for _ in range(BATCH):
            try:
                if self.wildcard:
                    data, ancillary, _flags, client = sock.recvmsg(MAX_DATAGRAM, _CMSG_SPACE)
                    local = _destination(ancillary)
                    key: object = (client, local)
                else:
                    data, client = sock.recvfrom(MAX_DATAGRAM)
                    local = None
                    key = client
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error queued on the listener: nothing to do with it
            session = self.table.lookup(key)
            if session is None:
                session = self.open(key, client, local, now)
                if session is None:
                    continue
            flow: UdpFlow = session.io
            if flow.up is not None and not flow.up.admits(now):
                continue         # a paused session's datagram is dropped, as nginx does
            try:
                if flow.preamble:
                    flow.sock.send(flow.preamble + data)
                    flow.preamble = b""
                else:
                    flow.sock.send(data)
            except BlockingIOError:
                continue  # the upstream socket's buffer is full: drop, as the network would
            except OSError as exc:
                self.upstream_error(session, exc, "send() failed", "while proxying connection")
                continue
            flow.vars.bytes_received += len(data)
            flow.vars.upstream_bytes_sent += len(data)
            if flow.up is not None:
                flow.up.passed(len(data), now)
            if self.table.request(session, now):
                if self.verbose:
                    self.log.info(self.counts("udp done", session))
                self.finish(session, status=200, failed=False)
            else:
                self.schedule(now)

    def open(self, key: object, client: tuple[str, int], local: str | None, now: float) -> UdpSession | None:
        server = self.server
        variables = StreamVariables(self.ctx, "UDP", client, (local, self.local_addr[1]) if local
                                    else self.local_addr, time.time())
        if self.verbose:      # nginx's first line of a session, at info level
            self.log.log("info", f"udp client {client[0]}:{client[1]} connected to {self.listen_name}")
        for name, value in server.sets:      # stream `set`, in nginx's preaccess phase
            variables.set_variable(name, render(value, variables))
        if server.access and not allowed(server.access, client[0]):
            self.say("forbidden", "error",
                     f"{FORBIDDEN}, udp client: {client[0]}, server: {self.listen_name}")
            return None          # nginx's access phase: the datagram goes nowhere
        if server.return_value is not None:
            self.reply(render_bytes(server.return_value, variables), client, local)
            return None
        if self.table.full:
            self.say("full", "alert", f"{self.table.capacity} worker_connections are not enough, "
                                      f"client: {client[0]}, server: {self.listen_name}")
            return None
        balancer = self.balancer
        assert balancer is not None
        tried = balancer.start(server.proxy_next_upstream_tries, request_key(balancer.upstream, variables))
        peer = balancer.get(tried, now)
        if peer is None:
            self.say("no live", "error", f"no live upstreams while connecting to upstream, udp client: "
                                         f"{client[0]}, server: {self.listen_name}")
            return None
        variables.upstream_addr.append(peer.name)
        family = family_of(peer.server.host)
        try:
            bind = bind_to(server.proxy_bind, variables)
            if bind is None:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                sock.setblocking(False)
            elif family_of(bind.host) != family:
                raise BindError(f'local address "{bind}" and upstream "{peer.server.host}" are of different '
                                "address families", level="error")
            else:
                sock = bound_socket(family, socket.SOCK_DGRAM, bind.host, bind.port, bind.transparent)
        except (BindValueError, BindError) as exc:
            balancer.free(peer, failed=False, now=now)
            if isinstance(exc, BindError) and exc.errno:
                self.row[self.errors.errno_column(exc.errno)] += 1
            problem = exc if isinstance(exc, BindError) else BindError(str(exc), level="error")
            where = f"udp client: {client[0]}, server: {self.listen_name}, upstream: \"{peer.name}\""
            self.say("bind", problem.level, problem.describe(where))
            return None
        try:
            # A connected UDP socket: the kernel filters replies to this peer and reports its
            # ICMP port-unreachable as ECONNREFUSED, which is how a dead peer is noticed.
            sock.connect(peer.address)
        except OSError as exc:
            sock.close()
            balancer.free(peer, failed=True, now=now)
            if self.transparent and exc.errno:
                self.row[self.errors.errno_column(exc.errno)] += 1
            self.say("connect", "error", f"connect() failed ({exc.errno}: {exc.strerror}) while "
                                         f"connecting to upstream, udp client: {client[0]}, server: "
                                         f"{self.listen_name}, upstream: \"{peer.name}\"")
            return None
        flow = UdpFlow(sock, peer, client, local, variables)
        if server.proxy_protocol:
            # PROXY v2 (v1 cannot say UDP), prepended to the first datagram of the session only:
            # the upstream keys its session by our socket's address, as it would a client's.
            flow.preamble = proxy_protocol.v2(client[:2], variables.local[:2], "dgram")
        if server.proxy_upload_rate or server.proxy_download_rate:
            said = flow.limit_rates(server, now)
            if said is not None:
                self.say("rate", "error", f"{said}, udp client: {client[0]}, server: {self.listen_name}")
        session = self.table.open(key, now, flow)
        self.loop.add_reader(flow.fd, self.on_upstream_readable, session)
        row = self.row
        if self.zone is not None:
            row[self.zone.processing] += 1
            row[self.zone.requests] += 1
        if self.peer_columns:
            columns = flow.columns = self.peer_columns[peer.index]
            row[columns.requests] += 1
            row[columns.active] += 1
            row[columns.selected] = int(variables.started * 1000)     # the session's wall-clock start
        return session

    # --- upstream -> client --------------------------------------------------------------

    def on_upstream_readable(self, session: UdpSession) -> None:
        flow: UdpFlow = session.io
        now = self.loop.time()
        for _ in range(BATCH):
            down = flow.down
            if down is not None and not down.admits(now):
                # paused: what the upstream sends waits in the kernel until then
                self.loop.remove_reader(flow.fd)
                flow.paused = self.loop.call_at(down.until, self.resume_upstream, session)
                self.schedule(now)
                return
            try:
                data = flow.sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                self.schedule(now)
                return
            except OSError as exc:
                self.upstream_error(session, exc, "recv() failed", "while proxying and reading from upstream")
                return
            self.reply(data, flow.client, flow.local)
            flow.vars.bytes_sent += len(data)
            flow.vars.upstream_bytes_received += len(data)
            if down is not None:
                down.passed(len(data), now)
            if self.table.response(session, now):
                if self.verbose:
                    self.log.info(self.counts("udp done", session))
                self.finish(session, status=200, failed=False)
                return
        self.schedule(now)

    def resume_upstream(self, session: UdpSession) -> None:
        flow: UdpFlow = session.io
        flow.paused = None
        self.loop.add_reader(flow.fd, self.on_upstream_readable, session)

    def reply(self, data: bytes, client: tuple[str, int], local: str | None) -> None:
        try:
            if local is None:
                self.sock.sendto(data, client)
            else:
                self.sock.sendmsg([data], [_source_cmsg(self.family, local)], 0, client)
        except OSError:
            pass  # the client's network refused it; UDP has no one to tell

    # --- ending --------------------------------------------------------------------------

    def upstream_error(self, session: UdpSession, exc: OSError, call: str, when: str) -> None:
        flow: UdpFlow = session.io
        code = exc.errno or errno.EIO
        self.say(call, "error", f"{call} ({code}: {os.strerror(code)}) {when}, {self.context(flow)}")
        self.finish(session, status=502, failed=True)

    def say(self, kind: str, level: str, message: str) -> None:
        """An error a datagram can cause: at most one line a second of each kind, with the count."""
        limiter = self._limited.get(kind)
        if limiter is None:
            limiter = self._limited[kind] = LogLimiter(self.log, self.loop.call_later, self.loop.time)
        limiter.report(level, message)

    def context(self, flow: UdpFlow) -> str:
        v = flow.vars
        return (f"udp client: {flow.client[0]}, server: {self.listen_name}, upstream: \"{flow.peer.name}\", "
                f"bytes from/to client:{v.bytes_received}/{v.bytes_sent}, "
                f"bytes from/to upstream:{v.upstream_bytes_received}/{v.upstream_bytes_sent}")

    def finish(self, session: UdpSession, status: int, failed: bool) -> None:
        flow: UdpFlow = session.io
        self.table.close(session)
        self.loop.remove_reader(flow.fd)
        if flow.paused is not None:
            flow.paused.cancel()
            flow.paused = None
        flow.sock.close()
        assert self.balancer is not None
        disabled = self.balancer.free(flow.peer, failed=failed, now=self.loop.time())
        if disabled:
            self.log.warning("upstream server temporarily disabled while proxying connection, "
                             f"{self.context(flow)}")
        flow.vars.status = status
        self.count(flow, status, failed, disabled)
        if self.access:
            self.access.write(flow.vars)
        if self.draining and not len(self.table):
            self._idle.set()

    def count(self, flow: UdpFlow, status: int, failed: bool, disabled: bool) -> None:
        """The session is over: its zone's and its peer's shared counters (nginx Plus's fields)."""
        row, v = self.row, flow.vars
        if self.zone is not None:
            self.zone.finished(row, status, v.bytes_received, v.bytes_sent)
        columns = flow.columns
        if columns is not None:
            row[columns.active] -= 1
            row[columns.sent] += v.upstream_bytes_sent
            row[columns.received] += v.upstream_bytes_received
            if failed:
                row[columns.fails] += 1
            if disabled:
                row[columns.unavail] += 1
                row[columns.unavail_until] = int((time.time() + flow.peer.server.fail_timeout) * 1000)

    def schedule(self, now: float) -> None:
        if self.timer is not None:
            # Deadlines only move later (a touched session goes to the back with now + timeout,
            # a new one too): an armed timer is never late. Called per datagram, so checked first.
            return
        deadline = self.table.next_deadline()
        if deadline is None:
            return
        self.timer = self.loop.call_at(deadline, self.on_timer)

    def counts(self, what: str, session: UdpSession) -> str:
        """nginx's info line at a session's end (ngx_stream_proxy_test_finalize, the timeout)."""
        flow: UdpFlow = session.io
        v = flow.vars
        return (f"{what}, packets from/to client:{session.requests}/{session.responses}, "
                f"bytes from/to client:{v.bytes_received}/{v.bytes_sent}, "
                f"bytes from/to upstream:{v.upstream_bytes_received}/{v.upstream_bytes_sent}, "
                f"{self.context(flow)}")

    def on_timer(self) -> None:
        self.timer = None
        now = self.loop.time()
        for expired in self.table.expire(now):
            flow: UdpFlow = expired.session.io
            if expired.failed:
                silent = self.transparent and not flow.vars.upstream_bytes_received
                hint = f"; {PLUMBING_HINT}" if silent else ""
                self.log.error(f"upstream timed out (110: Connection timed out) while proxying connection, "
                               f"{self.context(flow)}{hint}")
                self.finish(expired.session, status=502, failed=True)
            else:
                if self.verbose:
                    self.log.info(self.counts("udp timed out", expired.session))
                self.finish(expired.session, status=200, failed=False)
        self.schedule(now)


def _destination(ancillary: list[tuple[int, int, bytes]]) -> str | None:
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
            return socket.inet_ntop(socket.AF_INET, data[8:12])      # in_pktinfo.ipi_addr
        if level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO:
            return socket.inet_ntop(socket.AF_INET6, data[:16])      # in6_pktinfo.ipi6_addr
    return None


@functools.lru_cache(maxsize=1024)
def _source_cmsg(family: int, local: str) -> tuple[int, int, bytes]:
    """Select the reply's source address: ipi_spec_dst (v4) / ipi6_addr (v6), any interface."""
    if family == socket.AF_INET:
        return (socket.IPPROTO_IP, IP_PKTINFO,
                struct.pack("=i4s4s", 0, socket.inet_pton(socket.AF_INET, local), bytes(4)))
    return (socket.IPPROTO_IPV6, IPV6_PKTINFO, socket.inet_pton(socket.AF_INET6, local)
            + struct.pack("=i", 0))
