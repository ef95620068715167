"""`error_log syslog:server=...`: nginx's syslog lines (ngx_syslog_writer), one datagram each:

    <PRI>Dec  7 11:52:40 HOSTNAME TAG: 2026/12/07 11:52:40 [error] 123#123: the message

PRI is facility * 8 + the message's severity (its level: emerg 0 ... debug 7); the error log's own line
follows the header whole, as nginx sends it. A send that fails is dropped: logging never blocks."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from sheer.config.model import Syslog

SEVERITY = {"emerg": 0, "alert": 1, "crit": 2, "error": 3, "warn": 4, "notice": 5, "info": 6, "debug": 7}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MAX_MESSAGE = 2048 + 256    # NGX_SYSLOG_MAX_STR: NGX_MAX_ERROR_STR + a header's room


class SyslogError(Exception):
    """The syslog server's name does not resolve (nginx says so when it reads the configuration)."""


class SyslogSink:
    __slots__ = ("address", "facility", "prefix", "sock")

    def __init__(self, peer: Syslog) -> None:
        unix = peer.server.startswith("unix:")
        if unix:
            self.address: tuple[Any, ...] | str = peer.server[5:]
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        else:
            try:
                info = socket.getaddrinfo(peer.server, peer.port, type=socket.SOCK_DGRAM)[0]
            except OSError:
                raise SyslogError(f'host not found in syslog server "{peer.server}"') from None
            self.address = info[4]
            self.sock = socket.socket(info[0], socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.setblocking(False)
        self.facility = peer.facility * 8
        host = socket.gethostname().lower()
        self.prefix = f" {host} {peer.tag}: " if peer.hostname else f" {peer.tag}: "

    def send(self, level: str, line: bytes) -> None:
        head = f"<{self.facility + SEVERITY[level]}>{stamp(time.time())}{self.prefix}".encode()
        with contextlib.suppress(OSError):
            self.sock.sendto((head + line)[:MAX_MESSAGE], self.address)


def stamp(now: float) -> str:
    """nginx's ngx_cached_syslog_time: "Dec  7 11:52:40" (the day padded with a space), in English."""
    t = time.localtime(now)
    return f"{MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


_sinks: dict[Syslog, SyslogSink] = {}


def syslog_sink(peer: Syslog) -> SyslogSink:
    """One socket per syslog peer and process."""
    sink = _sinks.get(peer)
    if sink is None:
        sink = _sinks[peer] = SyslogSink(peer)
    return sink
