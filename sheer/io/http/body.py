"""A client's request body on its way upstream: buffered while small, then streamed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from sheer.config.request_body import BUFFER_SIZE
from sheer.core.http.verdict import Rejected

# Bodies up to this size are read completely before the first upstream try, so a failed try can
# be repeated on the next peer (nginx buffers every body, to disk if needed; sheer streams larger
# ones, which then can't be retried once sending started).
BUFFER_LIMIT = 64 * 1024
KEEP = BUFFER_SIZE      # nginx's client_body_buffer_size by default


class Reader(Protocol):
    loop: asyncio.AbstractEventLoop

    def pause(self, reason: str) -> None: ...
    def resume(self, reason: str) -> None: ...


def _discard(data: bytes) -> None:
    pass


class RequestBody:
    # what a body starts with, on the class: set per instance only when it changes (a request without
    # a body never changes them)
    size = 0
    sink: Callable[[bytes], None] | None = None
    end: Callable[[], None] | None = None
    waiter: asyncio.Future[None] | None = None
    limit = BUFFER_LIMIT
    replayable = True
    failed: Rejected | None = None       # the body broke nginx's rules (bad chunk, too large)
    broken: Callable[[Rejected], None] | None = None     # told when it does while streaming
    # $request_body: a body up to this size is kept for it, streamed or not (client_body_buffer_size)
    keep = KEEP
    keeping = False       # streaming, and what was streamed still fits in `keep`

    def __init__(self, reader: Reader, content_length: int | None, chunked: bool) -> None:
        self.reader = reader
        self.content_length = content_length
        self.chunked = chunked
        self.expected = chunked or bool(content_length)     # a body comes (its framing never changes)
        self.chunks: list[bytes] = []
        self.done = not self.expected

    def feed(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink(data)
            if self.keeping:
                self._keep(data)
            return
        self.chunks.append(data)
        self.size += len(data)
        if self.size > self.limit:
            self.reader.pause("body")
            self._wake()

    def finish(self) -> None:
        self.done = True
        if self.end is not None:
            self.end()
        self._wake()

    def fail(self, rejected: Rejected) -> None:
        """The client broke the body's framing: whoever waits for it or streams it is told."""
        self.failed = rejected
        self.chunks = []
        if self.broken is not None:
            self.broken(rejected)
        self._wake()

    async def ready(self, *, whole: bool) -> None:
        """Until the body is complete, or (unless `whole`) bigger than the buffer limit, or broken."""
        if whole:
            self.limit = 1 << 62
        if self.done or self.size > self.limit or self.failed is not None:
            return
        self.waiter = self.reader.loop.create_future()     # not get_running_loop(): a getpid() in 3.11
        try:
            await self.waiter
        finally:
            self.waiter = None

    def attach(self, sink: Callable[[bytes], None], end: Callable[[], None],
               broken: Callable[[Rejected], None] | None = None) -> None:
        """Send what arrived so far, then everything else as it arrives (`broken`: it broke)."""
        self.broken = broken
        for data in self.chunks:
            sink(data)
        if self.done:
            end()
            return
        self.replayable = False
        self.keeping = self.size <= self.keep
        if not self.keeping:
            self.chunks = []
        self.sink, self.end = sink, end
        self.reader.resume("body")

    def held(self) -> bytes:
        """nginx's $request_body: the body when it was complete and fits in client_body_buffer_size
        (nginx's memory buffer; a larger one goes to a file), else nothing."""
        if not self.done or self.failed is not None or self.size > self.keep:
            return b""
        if self.sink is not None and not self.keeping:
            return b""
        return b"".join(self.chunks)

    def whole(self) -> bytes | None:
        """The complete body when it was read into memory and not streamed (for $request_body_file)."""
        if not self.done or self.failed is not None or not self.replayable:
            return None
        return b"".join(self.chunks)

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.keep:
            self.keeping = False
            self.chunks = []
        else:
            self.chunks.append(data)

    def detach(self) -> None:
        """The upstream went away: whatever else the client sends is read and dropped."""
        self.sink, self.end, self.broken = _discard, None, None
        self.chunks = []
        self.keeping = False
        self.reader.resume("body")

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
