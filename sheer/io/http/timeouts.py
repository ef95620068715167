"""The client connection's timeouts. The header and keepalive timeouts are set and cleared for every
request, so they are a deadline, and one timer that wakes up now and then to compare it, rather than a
timer made and cancelled each time; the send timeout has a timer of its own while writing is paused."""

from __future__ import annotations

import asyncio


class Timeouts:
    """Part of sheer.io.http.client.ClientConnection, which has the loop and closes."""

    loop: asyncio.AbstractEventLoop
    timer: asyncio.TimerHandle | None          # wakes up at (or before) the deadline
    deadline: float | None                     # header or keepalive timeout; None: no timeout running
    send_timer: asyncio.TimerHandle | None     # send_timeout, while the client does not read

    def close(self) -> None:
        raise NotImplementedError

    def _arm(self, timeout: float) -> None:
        deadline = self.loop.time() + timeout
        self.deadline = deadline
        if self.timer is not None:
            if self.timer.when() <= deadline:
                return
            self.timer.cancel()
        self.timer = self.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self.timer = None
        deadline = self.deadline
        if deadline is None:
            return
        if self.loop.time() >= deadline:
            self.close()
        else:
            self.timer = self.loop.call_at(deadline, self._expire)

    def _clear_deadline(self) -> None:
        self.deadline = None

    def _cancel_timers(self) -> None:
        """Closing: no timer may keep the connection alive."""
        self.deadline = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.send_timer is not None:
            self.send_timer.cancel()
            self.send_timer = None

