"""Error and access logs in nginx's format, written with one write() per line like nginx does."""

from __future__ import annotations

import os
import re
import sys
import time
import zlib
from collections.abc import Callable

from sheer.config.model import LOG_LEVELS, AccessLog, ErrorLog
from sheer.config.template import Template
from sheer.core.variables import VariableSource, not_found_when_empty, render
from sheer.io.syslog import SyslogError, syslog_sink

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
    """`2026/11/26 15:46:37 [error] 123#123: message, client: ..., upstream: "..."`, written to each of the
    context's error logs whose level admits it (nginx writes a line to every such log)."""

    __slots__ = ("pid", "rank", "sinks")

    def __init__(self, log: ErrorLog) -> None:
        try:
            self.sinks = [(_RANK[each.level], open_log(each.path) if each.syslog is None
                           else syslog_sink(each.syslog)) for each in (log, *log.also)]
        except SyslogError as exc:
            raise LogOpenError(str(exc)) from None
        self.rank = min(rank for rank, _ in self.sinks)
        self.pid = os.getpid()

    def enabled(self, level: str) -> bool:
        return _RANK[level] >= self.rank

    def log(self, level: str, message: str) -> None:
        rank = _RANK[level]
        if rank < self.rank:
            return
        stamp = time.strftime("%Y/%m/%d %H:%M:%S")
        text = f"{stamp} [{level}] {self.pid}#{self.pid}: {message}"
        line = f"{text}\n".encode("utf-8", "replace")
        for least, sink in self.sinks:
            if rank < least:
                continue
            if isinstance(sink, int):
                try:
                    os.write(sink, line)
                except OSError:
                    if sink != 2:
                        sys.stderr.write(line.decode())
            else:
                sink.send(level, line[:-1])

    def error(self, message: str) -> None:
        self.log("error", message)

    def warning(self, message: str) -> None:
        self.log("warn", message)

    def info(self, message: str) -> None:
        self.log("info", message)


# A format's parts for escape=default, made once: (text, None, False) for the format's own text,
# ("", name, dash) for a variable, dash saying whether nginx writes `-` when it is empty (not found).
_Parts = tuple[tuple[str, str | None, bool], ...]


class AccessLogger:
    __slots__ = ("logs",)

    def __init__(self, logs: tuple[AccessLog, ...]) -> None:
        self.logs = [(open_log(log.path) if log.variable_path is None else log.variable_path,
                      log.format.template, _ESCAPES[log.format.escape], log.condition, log.gzip,
                      _parts(log.format.template))
                     for log in logs]

    def __bool__(self) -> bool:
        return bool(self.logs)

    def write(self, source: VariableSource) -> None:
        for sink, template, escape, condition, gzip, parts in self.logs:
            if condition is not None and render(condition, source) in ("", "0"):
                continue            # access_log ... if=: nginx skips the line
            if escape is _Escaped:      # every value is ASCII once escaped
                line = _escaped_line(parts, source)
            else:
                line = _raw_line(template, escape(source))
            if gzip:     # `access_log ... gzip`: a gzip member of its own, which gunzip and zcat read on
                packer = zlib.compressobj(gzip, zlib.DEFLATED, 31)
                line = packer.compress(line) + packer.flush()
            if isinstance(sink, int):
                try:
                    os.write(sink, line)
                except OSError:
                    pass
            else:
                _write_to(render(sink, source), line)


def _parts(template: Template) -> _Parts:
    return tuple((part, None, False) if isinstance(part, str)
                 else ("", part.name, not_found_when_empty(part.name)) for part in template.parts)


def _escaped_line(parts: _Parts, source: VariableSource) -> bytes:
    """A line of escape=default (what _Escaped does for any template, for a line: the per-request
    path of every access log in nginx's default format)."""
    out: list[str] = []
    for text, name, dash in parts:
        if name is None:
            out.append(text)
            continue
        value = source.variable(name)
        if not value:
            if dash:
                out.append("-")
        elif value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
            out.append(value)
        else:
            out.append(_UNSAFE.sub(_hex, value))
    out.append("\n")
    return "".join(out).encode("utf-8", "replace")


def _hex(found: re.Match[str]) -> str:
    return f"\\x{ord(found[0]):02X}"


def _write_to(path: str, line: bytes) -> None:
    """A log path with variables (`access_log logs/$host.log`): opened for this line, as nginx without
    open_log_file_cache; a path that cannot be opened loses the line."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return
    try:
        os.write(fd, line)
    except OSError:
        pass
    finally:
        os.close(fd)


def _raw_line(template: Template, source: VariableSource) -> bytes:
    """A line whose values keep their bytes (escape=json or none write bytes over 0x7F as they
    came, as nginx does); the format's own text is the configuration's UTF-8."""
    out: list[bytes] = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part.encode("utf-8"))
            continue
        value = source.variable(part.name)
        try:
            out.append(value.encode("latin-1"))     # a request's bytes, read as latin-1
        except UnicodeEncodeError:
            out.append(value.encode("utf-8", "replace"))   # a value the configuration wrote
    out.append(b"\n")
    return b"".join(out)


class _Escaped:
    """nginx's `escape=default` of access logs: in a variable's value, `"`, `\\` and every byte
    outside printable ASCII are written `\\xHH`, so that what a client sent (a request line of
    binary garbage, a header with control bytes) cannot forge or break a line of the log. A variable
    nginx would find missing (a header not sent, no upstream) is written `-`."""

    __slots__ = ("source",)

    def __init__(self, source: VariableSource) -> None:
        self.source = source

    def variable(self, name: str) -> str:
        value = self.source.variable(name)
        if _PRINTABLE.fullmatch(value):
            return value or ("-" if not_found_when_empty(name) else "")
        return _UNSAFE.sub(_hex, value)


class _Json:
    """`escape=json` (ngx_escape_json): `"` and `\\` get a backslash, control bytes are `\\n`,
    `\\r`, `\\t`, `\\b`, `\\f` or `\\u00XX`; a missing variable writes nothing."""

    __slots__ = ("source",)

    def __init__(self, source: VariableSource) -> None:
        self.source = source

    def variable(self, name: str) -> str:
        value = self.source.variable(name)
        if _JSON_SAFE.fullmatch(value):
            return value
        return _JSON_UNSAFE.sub(_json_escape, value)


def _json_escape(found: re.Match[str]) -> str:
    char = found[0]
    short = _JSON_SHORT.get(char)
    if short is not None:
        return short
    return f"\\u{ord(char):04X}"


def _unescaped(source: VariableSource) -> VariableSource:
    """`escape=none`: values as they are (a missing variable writes nothing, as nginx)."""
    return source


_PRINTABLE = re.compile(r'[ !#-\[\]-~]*')
_UNSAFE = re.compile(r'[^ !#-\[\]-~]')
_JSON_SAFE = re.compile(r'[^"\\\x00-\x1f]*')
_JSON_UNSAFE = re.compile(r'["\\\x00-\x1f]')
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
               "\f": "\\f"}
_ESCAPES: dict[str, Callable[[VariableSource], VariableSource]] = {
    "default": _Escaped, "json": _Json, "none": _unescaped}


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
