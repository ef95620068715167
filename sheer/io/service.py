"""The contract between a worker and what it serves (a TCP, UDP or HTTP listener)."""

from __future__ import annotations

from typing import Protocol


class Service(Protocol):
    """One listening socket served by one worker.

    The worker creates the service with the listening socket it inherited from the master, calls
    `start()`, and later either `stop_accepting()` + `await drain()` (graceful: SIGQUIT, reload)
    or `abort()` (fast: SIGTERM).
    """

    async def start(self) -> None: ...

    def stop_accepting(self) -> None: ...

    async def drain(self) -> None: ...

    def abort(self) -> None: ...
