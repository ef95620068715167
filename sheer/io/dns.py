"""Asking name servers: DNS over UDP, over TCP when the UDP answer is truncated (RFC 7766), A and
AAAA at once. The resolver task (sheer.runtime.resolver) and the workers' per-request lookups
(`proxy_pass http://$variable`) ask through `DnsClient`; sheer.core.resolve_wire decides what
the bytes that come back mean, dnspython builds and parses them.

Bounded as nginx's resolver is: each question goes to the servers in turn, RESEND seconds each,
and the whole resolution ends at `resolver_timeout` (TIMEDOUT) whatever the servers do, so a
server that never answers costs at most that, and nothing here ever blocks the event loop.
Each UDP question uses its own connected socket on a fresh ephemeral port: the kernel delivers
only datagrams from that server's address and port, and a forger has to guess the port and the
16-bit ID; what arrives and is not the answer is logged and ignored, and the wait goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable

import dns.message

from sheer.config.resolver import Resolver
from sheer.core.resolve import NameCache, valid_until
from sheer.core.resolve_wire import (
    MAX_CNAMES,
    SERVFAIL,
    TIMEDOUT,
    Accepted,
    Answer,
    Ignored,
    Resolution,
    Truncated,
    Verdict,
    answer_of,
    check,
    cname_to_follow,
    combine,
    queries,
)
from sheer.io.upstream_connect import connect

RESEND = 5.0             # nginx's resend_timeout: how long one server gets before the next is asked
Log = Callable[[str, str], None]     # (level, message)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | OSError] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):      # ICMP port unreachable and the like, on a connected socket
            self.queue.put_nowait(exc)


def _server_name(server: tuple[str, int]) -> str:
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class DnsClient:
    """One `resolver` directive's servers, asked in turn (round robin across questions)."""

    def __init__(self, resolver: Resolver, log: Log) -> None:
        self.resolver = resolver
        self.log = log
        self.turn = 0

    async def resolve(self, name: str) -> Resolution:
        """Every address of `name` (A and AAAA as the resolver says), or why not; never longer
        than resolver_timeout."""
        try:
            async with asyncio.timeout(self.resolver.timeout):
                return await self._resolve(name, 0)
        except TimeoutError:
            return Resolution(TIMEDOUT)

    async def _resolve(self, name: str, depth: int) -> Resolution:
        asked = queries(name, self.resolver.ipv4, self.resolver.ipv6)
        # A name's A and AAAA questions go to one server, the next name's to the next (nginx's
        # rn->last_connection); a resend moves both on to the next server.
        first = self.turn
        self.turn += 1
        async with asyncio.TaskGroup() as tasks:
            pending = [tasks.create_task(self._ask(query, first)) for query in asked]
        answers = [task.result() for task in pending]
        cname = cname_to_follow(answers)
        if cname is not None:
            if depth >= MAX_CNAMES:
                return Resolution(SERVFAIL)
            return await self._resolve(cname, depth + 1)     # the chain left the answer: ask for its end
        return combine(answers)

    async def _ask(self, query: dns.message.QueryMessage, first: int) -> Answer:
        """One question until a server answers it (the caller's timeout ends the asking), starting
        with the server `first` and going round."""
        servers = self.resolver.servers
        wire = query.to_wire()
        loop = asyncio.get_running_loop()
        turn = first
        while True:
            server = servers[turn % len(servers)]
            turn += 1
            until = loop.time() + RESEND
            try:
                async with asyncio.timeout(RESEND):
                    verdict = await self._udp(server, query, wire)
                    if isinstance(verdict, Truncated):
                        verdict = await self._tcp(server, query, wire)
                    if isinstance(verdict, Accepted):
                        return answer_of(verdict.response)
            except TimeoutError:
                continue
            except OSError as exc:
                self.log("error", f"{_failed(exc)}, resolver: {_server_name(server)}")
            # This server failed at once (refused, unreachable): nginx waits for its resend timer
            # before asking again; so do we, rather than hammer the servers in a loop.
            await asyncio.sleep(max(0.0, until - loop.time()))

    async def _udp(self, server: tuple[str, int], query: dns.message.Message, wire: bytes) -> Verdict:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        transport, protocol = await loop.create_datagram_endpoint(_Datagrams, remote_addr=server,
                                                                  family=family)
        try:
            transport.sendto(wire)
            while True:
                item = await protocol.queue.get()
                if isinstance(item, OSError):
                    raise item
                verdict = check(query, item, tcp=False)
                if not isinstance(verdict, Ignored):
                    return verdict
                self.log("error", f"{verdict.reason}, resolver: {_server_name(server)}")
        finally:
            transport.close()

    async def _tcp(self, server: tuple[str, int], query: dns.message.Message, wire: bytes) -> Verdict:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await connect(loop, sock, server, RESEND)
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(len(wire).to_bytes(2, "big") + wire)
            await writer.drain()
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                verdict = check(query, await reader.readexactly(size), tcp=True)
                if not isinstance(verdict, Ignored):
                    return verdict
                self.log("error", f"{verdict.reason}, resolver: {_server_name(server)}")
        except asyncio.IncompleteReadError:
            raise ConnectionResetError(104, "Connection reset by peer") from None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _failed(exc: OSError) -> str:
    """nginx's `recv() failed (111: Connection refused)`."""
    code = exc.errno or 0
    return f"recv() failed ({code}: {os.strerror(code)})" if code else f"recv() failed ({exc})"


class NameLookups:
    """A worker's lookups for `proxy_pass http://$variable`: answers kept while they stand (per
    `resolver`, as nginx keeps one cache per resolver), and one question in flight per name, whatever
    the number of requests waiting for it."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.cache = NameCache()
        self.clients: dict[int, DnsClient] = {}
        self.pending: dict[tuple[int, str], asyncio.Future[Resolution]] = {}

    async def resolve(self, name: str, resolver: Resolver) -> Resolution:
        loop = asyncio.get_running_loop()
        name = name.lower()           # ngx_resolve_name_locked: names are asked and kept in lowercase
        key = (id(resolver), name)
        while True:
            found = self.cache.get(f"{key[0]} {name}", loop.time())
            if found is not None:
                return found
            waiting = self.pending.get(key)
            if waiting is None:
                break
            try:
                return await asyncio.shield(waiting)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                # the request that was asking went away: ask again
        client = self.clients.get(id(resolver))
        if client is None:
            client = self.clients[id(resolver)] = DnsClient(resolver, self.log)
        future: asyncio.Future[Resolution] = loop.create_future()
        self.pending[key] = future
        try:
            resolution = await client.resolve(name)
            if resolution.ok:       # nginx keeps answers, not failures
                self.cache.put(f"{key[0]} {name}", resolution,
                               valid_until(resolution, resolver.valid, loop.time()))
            future.set_result(resolution)
            return resolution
        finally:
            del self.pending[key]
            if not future.done():
                future.cancel()
