"""The client side of an HTTP/1.x connection, sans I/O: bytes in, requests out, in nginx's order.

    reader.feed(data)
    while (event := reader.next_event()) is not None:
        RequestHead -> route it (then reader.limit_body(client_max_body_size))
        bytes       -> body data of the current request
        END         -> its body is complete (the next head may follow at once: pipelining); a head
                       that declares no body (no Content-Length or 0, not chunked) has no END
        Rejected    -> what nginx answers; the reader stops: nothing after it is read

A head is parsed only once the previous request's body is complete, so a bad request after
good pipelined ones is reported after them, as nginx does."""

from __future__ import annotations

import re
from typing import Final

from sheer.core.http.chunked import Chunked, ChunkedDecoder
from sheer.core.http.request_head import Limits, RequestHead, parse_head
from sheer.core.http.request_line import HTTP_10
from sheer.core.http.verdict import Rejected


class End:
    """The body of the current request is complete."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


END: Final = End()
_FIRST_LINE = re.compile(rb"[\r\n]*([^\r\n]*)")
_END_OF_HEAD = re.compile(rb"\n\r?\n")

Event = RequestHead | bytes | End | Rejected


class RequestReader:
    __slots__ = ("buffer", "decoder", "hold", "last", "left", "limits", "pos", "refused_line", "stopped")

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.buffer = b""
        self.pos = 0
        self.left = -1                       # Content-Length bytes still to come; -1: not in a body
        self.decoder: ChunkedDecoder | None = None
        self.stopped = False
        self.refused_line = b""              # $request of a refused request: its first line as sent
        self.last = False                    # the body being read is the last thing read (then stop)
        # After a request with Upgrade, what follows may be another protocol's bytes (a 101 makes
        # the connection a tunnel): no head is parsed until its answer says which.
        self.hold = False

    def feed(self, data: bytes) -> None:
        if self.stopped:
            return
        if self.pos >= len(self.buffer):
            self.buffer, self.pos = data, 0
        elif self.pos:
            self.buffer, self.pos = self.buffer[self.pos:] + data, 0
        else:
            self.buffer += data

    @property
    def reading_head(self) -> bool:
        """Bytes of a head that is not complete yet (stub_status "reading", client_header_timeout)."""
        return (self.pos < len(self.buffer) and self.left < 0 and self.decoder is None and not self.stopped
                and not self.hold)

    @property
    def in_body(self) -> bool:
        return self.left >= 0 or self.decoder is not None

    def _head_length(self) -> int:
        """Where the head of a refused request ends (its body follows)."""
        found = _END_OF_HEAD.search(self.buffer, self.pos)
        return found.end() - self.pos if found is not None else len(self.buffer) - self.pos

    def pending(self) -> bytes:
        """What was received and not parsed yet."""
        return self.buffer[self.pos:]

    def partial_line(self) -> bytes:
        """The next request's line as far as it came (nginx's $request for a request it refused):
        up to the first CR or LF after the empty lines nginx skips."""
        found = _FIRST_LINE.match(self.buffer, self.pos, self.pos + 8192)
        return found[1] if found is not None else b""

    def stop(self) -> None:
        """Nothing more is parsed (the connection ends after the current answer)."""
        self.stopped = True
        self.buffer, self.pos = b"", 0
        self.left = -1
        self.decoder = None

    def limit_body(self, limit: int) -> Rejected | None:
        """client_max_body_size of where the last head was routed (0: no limit): nginx refuses a
        declared length beyond it at once, a chunked body when a chunk would pass it."""
        if self.decoder is not None:
            self.decoder.limit = limit
        elif limit and self.left > limit:
            self.last = True                 # read and dropped, then nothing more
            return Rejected(413, f"client intended to send too large body: {self.left} bytes", "error")
        return None

    def next_event(self) -> Event | None:
        left = self.left
        if left >= 0:
            if left == 0 and not self.last:      # a body complete, or none (the common GET)
                self.left = -1
                return END
            return self._length()
        if self.decoder is not None:
            return self._chunked()
        if self.pos >= len(self.buffer) or self.stopped or self.hold:
            return None
        head = parse_head(self.buffer, self.pos, self.limits)
        if head is None:
            return None
        if isinstance(head, Rejected):
            self.refused_line = self.partial_line()
            if head.chunked or head.content_length:    # its body is read and dropped, then nothing more
                self.pos += self._head_length()
                self.last = True
                if head.chunked:
                    self.decoder = ChunkedDecoder()
                else:
                    self.left = head.content_length
            else:
                self.stop()
            return head
        self.pos += head.length
        if head.version < HTTP_10:
            self.stop()                      # HTTP/0.9: one request without a body, nothing after it
        elif head.chunked:
            self.decoder = ChunkedDecoder()
        elif head.content_length:
            self.left = head.content_length          # no body declared: the next head comes next
        return head

    def _length(self) -> bytes | End | None:
        left = self.left
        if left == 0:
            self.left = -1
            if self.last:
                self.stop()
            return END
        available = len(self.buffer) - self.pos
        if available <= 0:
            return None
        if available <= left and self.pos == 0:
            data = self.buffer
            self.buffer = b""
        else:
            take = min(left, available)
            data = self.buffer[self.pos:self.pos + take]
            self.pos += take
        self.left = left - len(data)
        return data

    def _chunked(self) -> bytes | End | Rejected | None:
        decoder = self.decoder
        assert decoder is not None
        if self.pos >= len(self.buffer):
            return None
        out: list[bytes] = []
        self.pos, status = decoder.feed(self.buffer, self.pos, out)
        if isinstance(status, Rejected):
            self.decoder = None
            self.stop()
            return status
        if status is Chunked.DONE:
            self.decoder = None
            self.left = 0                    # END on the next call
            if not out:
                return self._length()
        if not out:
            return None
        return out[0] if len(out) == 1 else b"".join(out)
