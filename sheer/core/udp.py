"""UDP sessions with nginx's semantics (ngx_stream_proxy_module), sans-IO.

A session binds a client (address, port, and the local address on wildcard listeners) to one
upstream. `proxy_responses N`: the session is done once N responses per client datagram came
back. `proxy_requests N`: after N client datagrams the client is unbound from the session (its
next datagram opens a new one) while this one waits for its responses; until then the session goes
on whatever came back, as ngx_stream_proxy_test_finalize declines while fewer than N datagrams were
forwarded (`proxy_requests 2; proxy_responses 1;` keeps a client's first two datagrams on one
upstream). `proxy_timeout`: the
session ends when nothing moved in either direction for that long; it is an upstream failure
if responses were still expected.

All sessions of a listener share one timeout, so "least recently active" order is deadline
order: touching moves a session to the end, expiry pops from the front. One timer suffices.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any


class UdpSession:
    __slots__ = ("bound", "deadline", "io", "key", "requests", "responses")

    def __init__(self, key: Hashable, deadline: float, io: Any) -> None:
        self.key = key
        self.requests = 0
        self.responses = 0
        self.deadline = deadline
        self.bound = True
        self.io = io            # the driver's own state for this session (sockets, peer, counters)


@dataclass(frozen=True, slots=True)
class Expired:
    session: UdpSession
    failed: bool                # responses were still expected: nginx's "upstream timed out"


class UdpSessionTable:
    def __init__(self, timeout: float, capacity: int, responses: int | None, requests: int) -> None:
        self.timeout = timeout
        self.capacity = capacity
        self.responses_expected = responses     # None: unlimited
        self.requests_limit = requests          # 0: unlimited
        self._bound: dict[Hashable, UdpSession] = {}
        self._live: OrderedDict[int, UdpSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[UdpSession]:
        return iter(list(self._live.values()))

    @property
    def full(self) -> bool:
        return len(self._live) >= self.capacity

    def lookup(self, key: Hashable) -> UdpSession | None:
        return self._bound.get(key)

    def open(self, key: Hashable, now: float, io: Any) -> UdpSession:
        session = UdpSession(key, now + self.timeout, io)
        self._bound[key] = session
        self._live[id(session)] = session
        return session

    def request(self, session: UdpSession, now: float) -> bool:
        """A client datagram was forwarded. Returns True when the session is already done."""
        session.requests += 1
        self._touch(session, now)
        if self.requests_limit and session.requests >= self.requests_limit:
            self._unbind(session)
        return self.done(session)

    def response(self, session: UdpSession, now: float) -> bool:
        """An upstream datagram was forwarded to the client. Returns True when the session is done."""
        session.responses += 1
        self._touch(session, now)
        return self.done(session)

    def done(self, session: UdpSession) -> bool:
        expected = self.responses_expected
        if self.requests_limit and session.requests < self.requests_limit:
            return False
        if expected is None:
            return False
        return session.responses >= expected * session.requests

    def close(self, session: UdpSession) -> None:
        self._unbind(session)
        self._live.pop(id(session), None)

    def expire(self, now: float) -> list[Expired]:
        expired: list[Expired] = []
        while self._live:
            session = next(iter(self._live.values()))
            if session.deadline > now:
                break
            self.close(session)
            expected = self.responses_expected
            failed = expected is not None and session.responses < expected * session.requests
            expired.append(Expired(session, failed))
        return expired

    def next_deadline(self) -> float | None:
        if not self._live:
            return None
        return next(iter(self._live.values())).deadline

    def _touch(self, session: UdpSession, now: float) -> None:
        session.deadline = now + self.timeout
        self._live.move_to_end(id(session))

    def _unbind(self, session: UdpSession) -> None:
        if session.bound:
            session.bound = False
            if self._bound.get(session.key) is session:
                del self._bound[session.key]
