"""One request as the client side parsed it, and what a relay must answer to."""

from __future__ import annotations

from typing import Protocol

from sheer.core.http.variables import RequestVariables
from sheer.io.counting import ZoneColumns
from sheer.io.http.body import RequestBody


class Relay(Protocol):
    def client_paused(self, paused: bool) -> None: ...


class Request:
    __slots__ = (
        "body",
        "counted",
        "expect_continue",
        "finished",
        "headers",
        "host",
        "keepalive",
        "length",
        "method",
        "raw_uri",
        "vars",
        "version",
        "zone",
    )

    def __init__(self, method: bytes, raw_uri: str, version: str, headers: list[tuple[bytes, bytes]],
                 keepalive: bool, body: RequestBody, host: str | None, expect_continue: bool) -> None:
        self.method = method
        self.raw_uri = raw_uri
        self.version = version
        self.headers = headers
        self.keepalive = keepalive
        self.body = body
        self.host = host
        self.expect_continue = expect_continue
        self.vars: RequestVariables | None = None
        self.finished = False
        self.length = 0
        self.counted = False        # counted as "writing" (stub_status) until it is finished
        self.zone: ZoneColumns | None = None    # its status_zone's columns


class HeaderTooLarge(Exception):
    pass
