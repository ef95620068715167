"""What a worker's services take from the process that runs them: the configuration, the logs, one
balancer per upstream block, the shared counters and the API's changes, the active checks' verdicts,
the addresses the resolver found for names, and who this process is.

Defined here, in io, and built by sheer.runtime (`sheer.runtime.context.worker_context`): io never
imports runtime, as mitmproxy's proxy core defines its own `Context`. The boards are protocols, so
a test builds a context with fakes or with a board of its own.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from sheer.config.model import Config, ErrorLog, Upstream
from sheer.core.balancers import Balancer
from sheer.core.health import Health
from sheer.core.maps import Table, tables_of
from sheer.core.stats import Layout
from sheer.io.logs import ErrorLogger
from sheer.io.slots import ConnectionSlots
from sheer.io.tls import TlsListener


@dataclass(frozen=True)
class Identity:
    """Who a forked process is, for the API's /nginx: its generation, when it was loaded, its row."""

    generation: int = 0
    load_time: float = 0.0
    row: int = -1


class SharedCounters(Protocol):
    """The statistics and control board every process shares (sheer.runtime.shared.SharedBoard):
    what the API and the metrics read, and where a PATCH writes."""

    @property
    def layout(self) -> Layout: ...

    def value(self, column: int) -> int: ...

    def overrides(self, row: int) -> tuple[int, int, int]: ...

    def changing(self) -> AbstractContextManager[None]: ...

    def set_override(self, row: int, down: int | None = None, drain: int | None = None,
                     weight: int | None = None) -> None: ...


class HealthStates(Protocol):
    """This generation's active checks (sheer.runtime.board.HealthBoard), as the API reports them."""

    def health(self, upstream: Upstream, index: int) -> Health | None: ...


class ResolvedPeers(Protocol):
    """The addresses the resolver put in each position of an upstream's `server NAME resolve` lines
    (sheer.runtime.peerset.PeerSetBoard)."""

    def read(self, upstream: Upstream) -> tuple[tuple[str | None, int], ...]: ...


@dataclass
class WorkerContext:
    config: Config
    log: ErrorLogger
    shared: SharedCounters
    counters: memoryview                    # this process's own row of the shared counters (int64)
    # One balancer per upstream block per worker, shared by every server using it (as in nginx).
    balancer_for: Callable[[Upstream], Balancer]
    health: HealthStates | None = None      # None: no active check in this configuration
    peers: ResolvedPeers | None = None      # None: no name is resolved while sheer runs
    # `listen ... ssl` addresses' OpenSSL contexts, made by the master before the fork (sheer.io.tls)
    tls: dict[tuple[str, int, bool], TlsListener] | None = None
    identity: Identity = field(default_factory=Identity)
    hostname: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    _loggers: dict[ErrorLog, ErrorLogger] = field(default_factory=dict)
    # the `map` variables of the http and stream blocks, made once per worker
    http_maps: dict[str, Table] = field(default_factory=dict)
    stream_maps: dict[str, Table] = field(default_factory=dict)
    _slots: ConnectionSlots | None = None
    _connections: int = 0
    # an `api`, `prometheus` or `dashboard` location reads the upstreams' peer counters: without one,
    # nothing does and proxied requests leave them alone (decided per configuration)
    peers_read: bool = False

    def __post_init__(self) -> None:
        if self.config.http is not None:
            self.peers_read = any(location.handler is not None and location.handler.kind != "stub_status"
                                  for server in self.config.http.servers for location in server.locations)
        if self.config.http is not None and not self.http_maps:
            self.http_maps = tables_of(self.config.http.maps, self.config.http.geos, self.config.http.splits)
        if self.config.stream is not None and not self.stream_maps:
            self.stream_maps = tables_of(self.config.stream.maps, self.config.stream.geos,
                                         self.config.stream.splits)

    def slots(self) -> ConnectionSlots:
        """worker_connections of this worker, shared by all its listeners (made in its event loop)."""
        if self._slots is None:
            loop = asyncio.get_running_loop()
            self._slots = ConnectionSlots(self.config.worker_connections, self.log, loop.call_later,
                                          loop.time)
        return self._slots

    def connection_number(self) -> int:
        """$connection: the next serial number of a client connection in this worker, http and stream
        alike (nginx's ngx_connection_counter)."""
        self._connections += 1
        return self._connections

    def error_log(self, log: ErrorLog | None) -> ErrorLogger:
        if log is None:
            return self.log
        found = self._loggers.get(log)
        if found is None:
            found = self._loggers[log] = ErrorLogger(log)
        return found
