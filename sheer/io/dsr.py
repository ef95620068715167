"""Direct Server Return for UDP: each client datagram leaves toward the balanced upstream as if
sent by the client's own ip:port, and sheer keeps nothing for it.

The sender is one raw socket with the IP header included (IPv4: IPPROTO_RAW implies IP_HDRINCL;
IPv6: the same on an AF_INET6 IPPROTO_RAW socket, the kernel then filling in nothing, so the payload
length and the UDP checksum IPv6 makes mandatory are ours): about two syscalls per datagram, and no
UDP socket bound to the client's address ever exists. That matters for router NAT: an open,
connected socket bound to the client's ip:port would be found by UDP early demux when the
upstream's reply is forwarded back through the proxy, and ip_forward() would then drop the
reply (nginx's connected sockets hit exactly this). A raw socket cannot be found that way, and
a `socket transparent` mark rule cannot match the reply either, so it is forwarded as it should.
IPv6 has the same trap (udp_v6_early_demux, then ip6_forward() drops a datagram with a socket), so
an IPV6_TRANSPARENT UDP socket bound to the client's ip:port, the other way to send as the client,
would need the socket closed before the reply comes back: one socket, bind and close per datagram
(nginx's way), against one sendto() here.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Callable

from sheer.config.template import Template, Var
from sheer.core.balancers import Balancer, request_key
from sheer.core.flowkey import key_shape
from sheer.core.jhash import address_key
from sheer.core.peers import positions
from sheer.core.udpwire import MAX_UDP6_PAYLOAD, MAX_UDP_PAYLOAD, udp6_datagram, udp_datagram
from sheer.io.context import WorkerContext
from sheer.io.counting import DsrColumns, peer_columns
from sheer.io.logs import AccessLogger, ErrorLogger, LogLimiter
from sheer.io.stream_vars import StreamVariables

BATCH = 64
PUBLISH = 0.25        # seconds: how stale the shared board's DSR counters may be while datagrams flow


class DsrSender:
    def __init__(self, balancer: Balancer, log: ErrorLogger, listen_name: str, access: AccessLogger,
                 ctx: WorkerContext) -> None:
        self.balancer = balancer
        self.log = log
        self.listen_name = listen_name
        self.access = access
        self.ctx = ctx
        self.raw: socket.socket | None = None
        self.family: int = socket.AF_INET
        # A peer's packed address, by its address: peers come and go with `server NAME resolve`.
        self.packed: dict[str, bytes] = {}
        self.positions = positions(balancer.upstream)
        self._logged: dict[str, LogLimiter] = {}
        self.key_of = self._key_function(balancer.upstream.balance.key)
        # Counting: running totals in plain lists (a list's `+= 1` is the cheapest add Python has),
        # published to the shared board (the service's sheer_dsr_* and each peer's `requests`, `sent`,
        # `selected`) at most every PUBLISH seconds while datagrams flow, and at close.
        layout = ctx.shared.layout
        self.row = ctx.counters
        block = layout.dsr.get(listen_name) or layout.dsr.get(f"{listen_name} udp")
        self.columns = DsrColumns(block) if block is not None else None
        self.peer_columns = peer_columns(layout, balancer.upstream)
        self.sent = [0] * self.positions       # datagrams and bytes per peer (position), since start
        self.size = [0] * self.positions
        self.dropped = [0, 0]                  # no live upstreams, send errors
        self._published = ([0] * self.positions, [0] * self.positions, [0, 0])
        self._publishing: asyncio.TimerHandle | None = None

    def open(self, family: int = socket.AF_INET) -> None:
        """`family`: the listener's; the client's address is the datagram's source, so the same."""
        self.family = family
        if family == socket.AF_INET6 and self.key_of is not None \
                and self.balancer.upstream.balance.method == "maglev":
            self.key_of = self._key_function(self.balancer.upstream.balance.key)
        try:
            # IPPROTO_RAW implies the header included (IP_HDRINCL, and its IPv6 equivalent): we write
            # the IP header, so the source can be the client's.
            self.raw = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
        except PermissionError as exc:
            self.log.log("alert", f"socket(SOCK_RAW) failed ({exc.errno}: {exc.strerror}) for direct server "
                                  f"return on {self.listen_name}; it needs CAP_NET_RAW: run sheer as root or "
                                  "grant the capability")
            return
        self.raw.setblocking(False)

    def close(self) -> None:
        if self._publishing is not None:
            self._publishing.cancel()
        self.publish()
        if self.raw is not None:
            self.raw.close()
            self.raw = None

    def on_readable(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        if self._publishing is None:
            self._publishing = loop.call_later(PUBLISH, self.publish)
        self._forward(sock, loop)

    def publish(self) -> None:
        """What was counted since the last time, into this worker's row of the shared board."""
        self._publishing = None
        row, columns = self.row, self.columns
        sent, size, dropped = self.sent, self.size, self.dropped
        was_sent, was_size, was_dropped = self._published
        if columns is not None:
            row[columns.datagrams] += sum(sent) - sum(was_sent)
            row[columns.bytes] += sum(size) - sum(was_size)
            row[columns.no_live_upstreams] += dropped[0] - was_dropped[0]
            row[columns.send_errors] += dropped[1] - was_dropped[1]
        stamp = 0
        for index, peer in enumerate(self.peer_columns[:self.positions]):
            count = sent[index] - was_sent[index]
            if count:
                row[peer.requests] += count
                row[peer.sent] += size[index] - was_size[index]
                row[peer.selected] = stamp = stamp or int(time.time() * 1000)
        self._published = (sent.copy(), size.copy(), dropped.copy())

    def _forward(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        sent, size, dropped = self.sent, self.size, self.dropped
        raw = self.raw
        balancer = self.balancer
        packed = self.packed
        key_of = self.key_of
        now = loop.time()
        build: Callable[[bytes, int, bytes, int, bytes], bytes]
        pack: Callable[[str], bytes]
        if self.family == socket.AF_INET6:
            build, pack, largest = udp6_datagram, _pack6, MAX_UDP6_PAYLOAD
        else:
            build, pack, largest = udp_datagram, socket.inet_aton, MAX_UDP_PAYLOAD
        for _ in range(BATCH):
            try:
                data, client = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            tried = balancer.start(1, key_of(sock, client) if key_of is not None else b"")
            peer = balancer.get(tried, now)
            if peer is None:
                dropped[0] += 1
                self.once("no live upstreams", f"no live upstreams while connecting to upstream, "
                                               f"udp client: {client[0]}, server: {self.listen_name}")
                continue
            balancer.free(peer, failed=False, now=now)
            if raw is None:
                continue
            host = peer.server.host
            address = packed.get(host)
            if address is None:
                address = packed[host] = pack(host)
            if len(data) > largest:
                continue
            try:
                raw.sendto(build(pack(client[0]), client[1], address, peer.server.port, data), (host, 0))
            except BlockingIOError:
                dropped[1] += 1
                continue  # the send buffer is full: dropped, as a congested link would
            except OSError as exc:
                dropped[1] += 1
                if exc.errno == errno.EMSGSIZE:
                    self.once("EMSGSIZE", f"a {len(data)}-byte datagram from {client[0]} exceeds the MTU "
                                          f"toward {peer.name}; direct server return sends datagrams "
                                          "unfragmented, so it was dropped")
                else:
                    self.once(str(exc.errno), f"sendto() failed ({exc.errno}: {exc.strerror}) while proxying "
                                              f"udp client: {client[0]}, upstream: \"{peer.name}\"")
                continue
            sent[peer.index] += 1
            size[peer.index] += len(data)
            if self.access:
                variables = StreamVariables(self.ctx, "UDP", client, sock.getsockname(), time.time())
                variables.upstream_addr.append(peer.name)
                variables.bytes_received = variables.upstream_bytes_sent = len(data)
                self.access.write(variables)

    def _key_function(self, key: Template | None) -> Callable[[socket.socket, tuple[str, int]], bytes] | None:
        """How a datagram's hash key is made: `hash $remote_addr ...` (what DSR fleets write) straight
        from the source address, anything else through the stream variables."""
        if key is None:
            return None
        if self.balancer.upstream.balance.method == "maglev":
            # the kernel's register layout (sheer.core.jhash.flow_key), built straight from the source
            shape = key_shape(key)
            if self.family == socket.AF_INET6 and shape is not None:
                port = shape == "addr_port"
                return lambda sock, client: address_key(client[0], client[1] if port else None)
            if shape == "addr":
                return lambda sock, client: socket.inet_aton(client[0])
            if shape == "addr_port":
                return lambda sock, client: (socket.inet_aton(client[0]) + client[1].to_bytes(2, "big")
                                             + b"\0\0")
        elif key.parts == (Var("remote_addr"),):
            return lambda sock, client: client[0].encode()
        ctx = self.ctx
        upstream = self.balancer.upstream

        def rendered(sock: socket.socket, client: tuple[str, int]) -> bytes:
            return request_key(upstream, StreamVariables(ctx, "UDP", client, sock.getsockname(), time.time()))
        return rendered

    def once(self, key: str, message: str) -> None:
        """Log a per-datagram problem at most once a second, then how many more there were."""
        limiter = self._logged.get(key)
        if limiter is None:
            loop = asyncio.get_running_loop()
            limiter = self._logged[key] = LogLimiter(self.log, loop.call_later, loop.time)
        limiter.report("error", message)


def _pack6(host: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, host)
