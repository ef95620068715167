"""nginx's rate limits, sans-IO: `limit_rate`/`limit_rate_after` (a response to the client), and stream's
`proxy_upload_rate`/`proxy_download_rate` (each direction of a session).

nginx keeps no token bucket. A transfer may have moved `rate` bytes for every second begun since it started
(whole seconds of the clock, as ngx_time()); a transfer ahead of that waits until it is not
(ngx_http_write_filter, ngx_stream_proxy_process):

    limit = rate * (now_sec - start_sec + 1) - moved          # <= 0: wait -limit/rate s (+1 ms)

and after each read (stream) or send (http) of n bytes it pauses n/rate seconds before the next. The one
object per limited transfer holds three numbers; a rate of 0 makes none (nothing is checked).
"""

from __future__ import annotations

import re

from sheer.config.template import Template
from sheer.core.variables import VariableSource, render

_SIZE = re.compile(r"([0-9]+)([kKmMgG]?)")
_SCALE = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MAX_SIZE = 2**63 - 1


def size(text: str) -> int | None:
    """nginx's ngx_parse_size for a value made at run time ("12k", "1m", "500"); None if it is not one."""
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    value = int(match.group(1)) * _SCALE[match.group(2).lower()]
    return value if value <= MAX_SIZE else None


class RateLimit:
    """One transfer's limit: `rate` bytes a second, the first `after` bytes free (limit_rate_after)."""

    __slots__ = ("after", "rate", "start")

    def __init__(self, rate: int, start: float, after: int = 0) -> None:
        assert rate > 0
        self.rate = rate
        self.start = int(start)        # nginx: start_sec, a whole second
        self.after = after

    def allowance(self, moved: int, now: float) -> int:
        """How many bytes may move now, `moved` having moved so far; <= 0: none (see `wait`)."""
        return self.rate * (int(now) - self.start + 1) - (moved - self.after)

    def wait(self, allowance: int) -> float:
        """Seconds to wait when `allowance` is used up (nginx: -limit * 1000 / rate + 1 ms)."""
        return ((-allowance * 1000) // self.rate + 1) / 1000

    def pause(self, before: int, moved: int) -> float:
        """Seconds to pause after the total moved went from `before` to `moved` (nginx's delay after a
        send or read; the bytes within limit_rate_after cost no pause)."""
        after = self.after
        n = max(0, moved - after) - max(0, before - after)
        return (n * 1000 // self.rate) / 1000


def evaluate(value: int | Template, source: VariableSource) -> tuple[int, str | None]:
    """A rate's bytes for one request or session: the configured size, or its template rendered; with
    nginx's error line when the rendered text is no size (the rate is then 0, as nginx's
    ngx_*_complex_value_size with its default)."""
    if isinstance(value, int):
        return value, None
    text = render(value, source)
    parsed = size(text)
    if parsed is None:
        return 0, f'invalid size "{text}"'
    return parsed, None


class DatagramLimit:
    """A UDP direction's limit (nginx's ngx_stream_proxy_process on a datagram socket): a datagram is
    never split, so one that the limit admits passes whole, and the pause its size costs follows it.
    While paused nothing is read: from the upstream's socket, datagrams wait in the kernel; from the
    client (whose datagrams arrive on the shared listener), nginx drops them, and so does sheer."""

    __slots__ = ("limit", "moved", "until")

    def __init__(self, rate: int, start: float) -> None:
        self.limit = RateLimit(rate, start)
        self.moved = 0
        self.until = 0.0             # paused until then

    def admits(self, now: float) -> bool:
        """May a datagram be read now? If not, `until` says when to ask again."""
        if now < self.until:
            return False
        allowance = self.limit.allowance(self.moved, now)
        if allowance <= 0:
            self.until = now + self.limit.wait(allowance)
            return False
        return True

    def passed(self, n: int, now: float) -> None:
        """A datagram of `n` bytes was read: the pause it costs starts now."""
        before = self.moved
        self.moved += n
        self.until = now + self.limit.pause(before, self.moved)
