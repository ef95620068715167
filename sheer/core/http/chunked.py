"""A chunked request body, decoded as nginx 1.22 decodes it (ngx_http_parse_chunked): chunk
sizes in hex within off_t, extensions skipped, CRLF or a bare LF after each part, trailers read
and dropped; anything else is "client sent invalid chunked body" (400). The data of a chunk is
sliced, not walked: only the few bytes of chunk headers and trailers go byte by byte."""

from __future__ import annotations

from enum import Enum

from sheer.core.http.verdict import Rejected

_MAX_OFF_T = (1 << 63) - 1

INVALID = Rejected(400, "client sent invalid chunked body", "error")


class Chunked(Enum):
    MORE = "more"          # everything given was used; more is needed
    DONE = "done"          # the last chunk and the trailers are read


# nginx's states, by name
(CHUNK_START, CHUNK_SIZE, CHUNK_EXTENSION, CHUNK_EXTENSION_ALMOST_DONE, CHUNK_DATA, AFTER_DATA,
 AFTER_DATA_ALMOST_DONE, LAST_CHUNK_EXTENSION, LAST_CHUNK_EXTENSION_ALMOST_DONE, TRAILER,
 TRAILER_ALMOST_DONE, TRAILER_HEADER, TRAILER_HEADER_ALMOST_DONE) = range(13)


def _hex(ch: int) -> int:
    if 48 <= ch <= 57:
        return ch - 48
    low = ch | 0x20
    if 97 <= low <= 102:
        return low - 87
    return -1


class ChunkedDecoder:
    """Feed the connection's buffer from a position; get the data and where decoding stopped."""

    __slots__ = ("limit", "received", "size", "state")

    def __init__(self, limit: int = 0) -> None:
        self.state = CHUNK_START
        self.size = 0
        self.received = 0          # data bytes so far
        self.limit = limit         # client_max_body_size (0: none)

    def feed(self, buffer: bytes, pos: int, out: list[bytes]) -> tuple[int, Chunked | Rejected]:
        end = len(buffer)
        state = self.state
        while pos < end:
            if state == CHUNK_DATA:
                take = min(self.size, end - pos)
                out.append(buffer[pos:pos + take])
                pos += take
                self.size -= take
                self.received += take
                if self.size:
                    break
                state = AFTER_DATA
                continue
            ch = buffer[pos]
            pos += 1
            if state == CHUNK_START:
                digit = _hex(ch)
                if digit < 0:
                    return pos, INVALID
                self.size = digit
                state = CHUNK_SIZE
            elif state == CHUNK_SIZE:
                if self.size > _MAX_OFF_T // 16:
                    return pos, INVALID
                digit = _hex(ch)
                if digit >= 0:
                    self.size = self.size * 16 + digit
                elif ch == 13:
                    state = CHUNK_EXTENSION_ALMOST_DONE if self.size else LAST_CHUNK_EXTENSION_ALMOST_DONE
                elif ch == 10:
                    if self.size:
                        refused = self._refused()
                        if refused is not None:
                            return pos, refused
                    state = CHUNK_DATA if self.size else TRAILER
                elif ch in (59, 32, 9):     # ";", " ", "\t"
                    state = LAST_CHUNK_EXTENSION if self.size == 0 else CHUNK_EXTENSION
                else:
                    return pos, INVALID
            elif state == CHUNK_EXTENSION:
                if ch == 13:
                    state = CHUNK_EXTENSION_ALMOST_DONE
                elif ch == 10:
                    refused = self._refused()
                    if refused is not None:
                        return pos, refused
                    state = CHUNK_DATA
            elif state == CHUNK_EXTENSION_ALMOST_DONE:
                if ch != 10:
                    return pos, INVALID
                refused = self._refused()
                if refused is not None:
                    return pos, refused
                state = CHUNK_DATA
            elif state == AFTER_DATA:
                if ch == 13:
                    state = AFTER_DATA_ALMOST_DONE
                elif ch == 10:
                    state = CHUNK_START
                else:
                    return pos, INVALID
            elif state in (AFTER_DATA_ALMOST_DONE, LAST_CHUNK_EXTENSION_ALMOST_DONE,
                           TRAILER_HEADER_ALMOST_DONE):
                if ch != 10:
                    return pos, INVALID
                state = CHUNK_START if state == AFTER_DATA_ALMOST_DONE else TRAILER
            elif state == LAST_CHUNK_EXTENSION:
                if ch == 13:
                    state = LAST_CHUNK_EXTENSION_ALMOST_DONE
                elif ch == 10:
                    state = TRAILER
            elif state == TRAILER:
                if ch == 13:
                    state = TRAILER_ALMOST_DONE
                elif ch == 10:
                    self.state = CHUNK_START
                    return pos, Chunked.DONE
                else:
                    state = TRAILER_HEADER
            elif state == TRAILER_ALMOST_DONE:
                if ch != 10:
                    return pos, INVALID
                self.state = CHUNK_START
                return pos, Chunked.DONE
            elif state == TRAILER_HEADER:
                if ch == 13:
                    state = TRAILER_HEADER_ALMOST_DONE
                elif ch == 10:
                    state = TRAILER
        self.state = state
        return pos, Chunked.MORE

    def _refused(self) -> Rejected | None:
        """A chunk's size is known: beyond off_t, or beyond client_max_body_size with what came before."""
        if self.size > _MAX_OFF_T - 5:
            return INVALID
        if self.limit and self.limit - self.received < self.size:
            return _too_large(self.received, self.size)
        return None


def _too_large(received: int, size: int) -> Rejected:
    return Rejected(413, f"client intended to send too large chunked body: {received}+{size} bytes", "error")
