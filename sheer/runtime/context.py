"""What a worker's services share: logs, per-upstream balancer state, identity."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from sheer.config.model import Config, ErrorLog, Upstream
from sheer.core.balancer import Balancer
from sheer.core.balancers import make_balancer
from sheer.io.logs import ErrorLogger
from sheer.runtime.board import HealthBoard


@dataclass
class WorkerContext:
    config: Config
    log: ErrorLogger
    health: HealthBoard | None = None      # active checks' shared peer state (this generation's)
    hostname: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    _balancers: dict[int, Balancer] = field(default_factory=dict)
    _loggers: dict[ErrorLog, ErrorLogger] = field(default_factory=dict)

    def balancer(self, upstream: Upstream) -> Balancer:
        """One balancer per upstream block per worker, shared by every server using it (as in nginx)."""
        key = id(upstream)
        found = self._balancers.get(key)
        if found is None:
            view = self.health.view(upstream) if self.health else None
            found = self._balancers[key] = make_balancer(upstream, view)
        return found

    def error_log(self, log: ErrorLog | None) -> ErrorLogger:
        if log is None:
            return self.log
        found = self._loggers.get(log)
        if found is None:
            found = self._loggers[log] = ErrorLogger(log)
        return found
