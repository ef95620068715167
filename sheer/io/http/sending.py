"""The request half of an upstream exchange (sheer.io.http.exchange.Exchange): its head, and its body
as the client's connection delivers it (sheer.io.http.body.RequestBody)."""

from __future__ import annotations

import asyncio

from sheer.core.http.headers import LAST_CHUNK
from sheer.core.http.verdict import Rejected
from sheer.io.http.body import RequestBody
from sheer.io.http.client import ClientConnection
from sheer.io.http.failures import ClientBroke
from sheer.io.http.upstream_pool import UpstreamConnection


class Sending:
    conn: UpstreamConnection
    loop: asyncio.AbstractEventLoop
    body: RequestBody | None
    body_chunked: bool
    batch: list[bytes] | None        # what goes out in one writev (the head and the body that is here)
    sent: int
    request_sent: bool
    last_activity: float
    read_timeout: float
    send_timeout: float

    client: ClientConnection
    done: asyncio.Future[None]
    write_paused_at: float

    def _arm(self, when: float) -> None:
        raise NotImplementedError

    def _abort(self, error: Exception) -> None:
        raise NotImplementedError

    def send(self, head: bytes, body: RequestBody | None, chunked: bool) -> None:
        transport = self.conn.transport
        assert transport is not None
        if body is None:
            self.sent = len(head)
            transport.write(head)
            self.request_sent = True      # _request_sent(), inline: the common GET's
            self.last_activity = now = self.loop.time()
        else:     # what of the body is here goes out with the head, in one writev (as nginx's)
            self.body, self.body_chunked = body, chunked
            self.sent = len(head) + body.size
            now = self.loop.time()
            self.batch = [head]
            body.attach(self._send_body, self._send_end, self._client_broke)
            batch, self.batch = self.batch, None
            if not self.conn.closed:       # the body may have broken nginx's rules on the way
                transport.writelines(batch)
        self._arm(now + min(self.read_timeout, self.send_timeout))

    def _send_body(self, data: bytes) -> None:
        transport = self.conn.transport
        if transport is None or self.conn.closed or not data:
            return
        if not self.body_chunked:
            (self.batch.append if self.batch is not None else transport.write)(data)
            return
        # nginx frames what one read brought as one chunk, and the last chunk goes with it when it
        # came in the same read: gathered until the read is handled
        if self.batch is None:
            self.batch = []
            self.loop.call_soon(self._flush)
        self.batch.extend((b"%x\r\n" % len(data), data, b"\r\n"))

    def _flush(self) -> None:
        batch, self.batch = self.batch, None
        transport = self.conn.transport
        if batch and transport is not None and not self.conn.closed:
            transport.writelines(batch)

    def _send_end(self) -> None:
        if self.body_chunked and self.conn.transport is not None and not self.conn.closed:
            (self.batch.append if self.batch is not None else self.conn.transport.write)(LAST_CHUNK)
        self._request_sent()

    def upstream_paused(self, paused: bool) -> None:
        """The upstream's socket is full (or no longer): the client is not read meanwhile."""
        if paused:
            self.write_paused_at = self.loop.time()
            self.client.pause("upstream")
            if not self.done.done():
                self._arm(self.write_paused_at + self.send_timeout)    # proxy_send_timeout
        else:
            self.last_activity = self.loop.time()
            self.client.resume("upstream")

    def _client_broke(self, rejected: Rejected) -> None:
        self._abort(ClientBroke(rejected))

    def _request_sent(self) -> None:
        self.request_sent = True
        self.last_activity = self.loop.time()
