"""The logs of the configuration model (sheer.config.model re-exports them): error logs with their
levels and syslog targets, access logs with their formats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sheer.config.template import Template

LogLevel = Literal["debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"]
LOG_LEVELS: tuple[LogLevel, ...] = ("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg")


@dataclass(frozen=True, slots=True)
class Syslog:             # `error_log syslog:server=...` (sheer.config.error_logs)
    server: str                # an address or a name, or "unix:PATH"
    port: int = 514
    facility: int = 23         # local7
    tag: str = "nginx"
    hostname: bool = True      # nohostname: False


@dataclass(frozen=True, slots=True)
class ErrorLog:
    path: str                  # absolute path, or "stderr", or the "syslog:..." target as written
    level: LogLevel = "error"
    syslog: Syslog | None = None
    also: tuple[ErrorLog, ...] = ()     # the context's further `error_log` lines, each with its level


@dataclass(frozen=True, slots=True)
class LogFormat:
    name: str
    template: Template
    escape: str = "default"    # log_format ... escape=default|json|none


@dataclass(frozen=True, slots=True)
class AccessLog:
    path: str                  # absolute path, or "stderr"/"stdout"
    format: LogFormat
    condition: Template | None = None      # `if=`: not written when it renders "" or "0"
    gzip: int = 0                          # `gzip[=level]`: each line a gzip member (0: plain text)
    variable_path: Template | None = None  # a path with variables: rendered and opened for each line
