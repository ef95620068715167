"""Error and access logs in nginx's format, written with one write() per line like nginx does."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable

from sheer.config.model import LOG_LEVELS, AccessLog, ErrorLog
from sheer.core.variables import VariableSource, render

_RANK: dict[str, int] = {level: rank for rank, level in enumerate(LOG_LEVELS)}
_files: dict[str, int] = {}


def open_log(path: str) -> int:
    """The file descriptor for a log path (opened once per process, append mode)."""
    if path == "stderr":
        return 2
    if path == "stdout":
        return 1
    fd = _files.get(path)
    if fd is None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LogOpenError(f'open() "{path}" failed ({exc.errno}: {exc.strerror})') from None
        _files[path] = fd
    return fd


def reopen_logs() -> None:
    """SIGUSR1 / `-s reopen`: after rotation, write to the new files."""
    for path, fd in list(_files.items()):
        os.close(fd)
        del _files[path]
        open_log(path)


class LogOpenError(Exception):
    pass


class ErrorLogger:
    """`2026/11/26 15:46:37 [error] 123#123: message, client: ..., upstream: "..."`."""

    __slots__ = ("fd", "pid", "rank")

    def __init__(self, log: ErrorLog) -> None:
        self.fd = open_log(log.path)
        self.rank = _RANK[log.level]
        self.pid = os.getpid()

    def enabled(self, level: str) -> bool:
        return _RANK[level] >= self.rank

    def log(self, level: str, message: str) -> None:
        if _RANK[level] < self.rank:
            return
        stamp = time.strftime("%Y/%m/%d %H:%M:%S")
        line = f"{stamp} [{level}] {self.pid}#{self.pid}: {message}\n".encode("utf-8", "replace")
        try:
            os.write(self.fd, line)
        except OSError:
            if self.fd != 2:
                sys.stderr.write(line.decode())

    def error(self, message: str) -> None:
        self.log("error", message)

    def warning(self, message: str) -> None:
        self.log("warn", message)

    def info(self, message: str) -> None:
        self.log("info", message)


class AccessLogger:
    __slots__ = ("logs",)

    def __init__(self, logs: tuple[AccessLog, ...]) -> None:
        self.logs = [(open_log(log.path), log.format.template) for log in logs]

    def __bool__(self) -> bool:
        return bool(self.logs)

    def write(self, source: VariableSource) -> None:
        escaped = _Escaped(source)
        for fd, template in self.logs:
            line = render(template, escaped) + "\n"
            try:
                os.write(fd, line.encode("utf-8", "replace"))
            except OSError:
                pass


class _Escaped:
    """nginx's `escape=default` of access logs: in a variable's value, `"`, `\\` and every byte
    outside printable ASCII are written `\\xHH`, so that what a client sent (a request line of
    binary garbage, a header with control bytes) cannot forge or break a line of the log."""

    __slots__ = ("source",)

    def __init__(self, source: VariableSource) -> None:
        self.source = source

    def variable(self, name: str) -> str:
        value = self.source.variable(name)
        if _PRINTABLE.fullmatch(value):
            return value
        return _UNSAFE.sub(lambda found: f"\\x{ord(found[0]):02X}", value)


_PRINTABLE = re.compile(r'[ !#-\[\]-~]*')
_UNSAFE = re.compile(r'[^ !#-\[\]-~]')


class LogLimiter:
    """One error-log line per second at most for a recurring event (accept() failing for want of
    descriptors, a datagram the kernel refuses): the first at once, the next ones counted and
    reported with their number one second later, so that a flood cannot fill the disk."""

    __slots__ = ("flush_at", "last", "level", "log", "message", "now", "schedule", "suppressed")

    def __init__(self, log: ErrorLogger, schedule: Callable[[float, Callable[[], None]], object],
                 now: Callable[[], float], interval: float = 1.0) -> None:
        self.log = log
        self.schedule = schedule        # loop.call_later
        self.now = now                  # loop.time
        self.last = -interval
        self.suppressed = 0
        self.level = "error"
        self.message = ""
        self.flush_at: float | None = None

    def report(self, level: str, message: str) -> None:
        now = self.now()
        self.level, self.message = level, message
        if now - self.last >= 1.0 and self.flush_at is None:
            self.last = now
            self.log.log(level, message)
            return
        self.suppressed += 1
        if self.flush_at is None:
            self.flush_at = max(self.last + 1.0, now)
            self.schedule(self.flush_at - now, self._flush)

    def _flush(self) -> None:
        self.flush_at = None
        if self.suppressed:
            count, self.suppressed = self.suppressed, 0
            self.last = self.now()
            self.log.log(self.level, f"{self.message} ({count} more in the last second)")
