"""`error_log`: a file, `stderr`, or `syslog:server=...`, at a level; given several times in one context,
a message goes to every log whose level admits it (nginx's ngx_log_set_log and ngx_syslog_process_conf)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sheer.config.errors import ConfigError, Source
from sheer.config.model import LOG_LEVELS, ErrorLog, Syslog

# nginx's syslog facilities, in their RFC 5424 order (kern = 0 ... local7 = 23)
FACILITIES = ("kern", "user", "mail", "daemon", "auth", "intern", "lpr", "news", "uucp", "clock", "authpriv",
              "ftp", "ntp", "audit", "alert", "cron", "local0", "local1", "local2", "local3", "local4",
              "local5", "local6", "local7")
SEVERITIES = ("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug")
_TAG = re.compile(r"[A-Za-z0-9_]*")
_PORT = re.compile(r"[0-9]+")


def error_log_arg(args: list[str], src: Source) -> tuple[str, str, Syslog | None]:
    """One `error_log` line: its target as written, its level, its syslog peer."""
    level = args[1] if len(args) > 1 else "error"
    if level not in LOG_LEVELS:
        raise ConfigError(f'invalid log level "{level}"', src)
    target = args[0]
    if target.startswith("memory:"):
        # nginx keeps a memory log only in its debug build (--with-debug); sheer is like nginx without it
        raise ConfigError('sheer was built without debug support ("memory:" logs are nginx\'s --with-debug '
                          "build's)", src)
    syslog = syslog_peer(target[7:], src) if target.startswith("syslog:") else None
    return target, level, syslog


def syslog_peer(text: str, src: Source) -> Syslog:
    """`server=ADDRESS[:PORT]`, `facility=`, `severity=`, `tag=`, `nohostname`, comma-separated."""
    server: tuple[str, int] | None = None
    facility: int | None = None
    severity = tag = None
    hostname = True
    for part in text.split(","):
        if part.startswith("server="):
            if server is not None:
                raise ConfigError('duplicate syslog "server"', src)
            server = _server(part[7:], src)
        elif part.startswith("facility="):
            if facility is not None:
                raise ConfigError('duplicate syslog "facility"', src)
            if part[9:] not in FACILITIES:
                raise ConfigError(f'unknown syslog facility "{part[9:]}"', src)
            facility = FACILITIES.index(part[9:])
        elif part.startswith("severity="):
            if severity is not None:
                raise ConfigError('duplicate syslog "severity"', src)
            if part[9:] not in SEVERITIES:
                raise ConfigError(f'unknown syslog severity "{part[9:]}"', src)
            severity = part[9:]     # an error log's severity is each message's level (nginx)
        elif part.startswith("tag="):
            if tag is not None:
                raise ConfigError('duplicate syslog "tag"', src)
            tag = part[4:]
            if len(tag) > 32:
                raise ConfigError("syslog tag length exceeds 32", src)
            if not _TAG.fullmatch(tag):
                raise ConfigError('syslog "tag" only allows alphanumeric characters and underscore', src)
        elif part == "nohostname":
            hostname = False
        else:
            raise ConfigError(f'unknown syslog parameter "{part}"', src)
    if server is None:
        raise ConfigError("no syslog server specified", src)
    return Syslog(server[0], server[1], 23 if facility is None else facility, tag or "nginx", hostname)


def _server(url: str, src: Source) -> tuple[str, int]:
    if url.startswith("unix:"):
        if len(url) == 5:
            raise ConfigError(f'no path in the unix domain socket in syslog server "{url}"', src)
        return url, 0
    host, port = url, "514"
    if url.startswith("["):
        end = url.find("]")
        if end < 0:
            raise ConfigError(f'invalid host in syslog server "{url}"', src)
        host, rest = url[1:end], url[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f'invalid host in syslog server "{url}"', src)
            port = rest[1:]
    elif url.count(":") == 1:
        host, port = url.split(":")
    if not host:
        raise ConfigError(f'no host in syslog server "{url}"', src)
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise ConfigError(f'invalid port in syslog server "{url}"', src)
    return host, int(port)


Line = tuple[tuple[str, str, Syslog | None], Any]      # a converted `error_log` line and its source


def error_logs(lines: list[Line], path: Callable[[str], str]) -> ErrorLog:
    """A context's `error_log` lines as one ErrorLog: the first, with the others in `also`; file paths
    relative to the prefix."""
    logs = [ErrorLog(target if syslog is not None else path(target), level, syslog)  # type: ignore[arg-type]
            for (target, level, syslog), _ in lines]
    first, *rest = logs
    return ErrorLog(first.path, first.level, first.syslog, tuple(rest))
