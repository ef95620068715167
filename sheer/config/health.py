"""Active health checks in the config: `health_check`, `health_check_timeout`, `match` blocks.

nginx Plus's directives (ngx_stream_upstream_hc_module, ngx_http_upstream_hc_module) with their
documented defaults: every 5s, one failure marks a peer down, one success brings it back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from sheer.config.errors import ConfigError, Source
from sheer.config.values import parse_number, parse_time

_HEX = re.compile(r"\\x([0-9A-Fa-f]{2})")
DEFAULT_UDP_PROBE = b"nginx health check"


@dataclass(frozen=True, slots=True)
class Expect:
    """`expect "literal"` (the reply starts with it), `expect ~ regex`, `expect ~* regex`."""

    text: str
    literal: bytes | None = None               # set for a literal
    regex: re.Pattern[bytes] | None = None     # set for ~ and ~*

    def matches(self, data: bytes) -> bool:
        if self.regex is not None:
            return self.regex.search(data) is not None
        assert self.literal is not None
        return data.startswith(self.literal)


@dataclass(frozen=True, slots=True)
class StreamMatch:
    name: str
    send: bytes = b""
    expect: Expect | None = None
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class StatusRule:
    """`status 200 204;`, `status ! 500;`, `status 200-399;`: ranges are inclusive."""

    ranges: tuple[tuple[int, int], ...]
    negated: bool = False

    def matches(self, status: int) -> bool:
        inside = any(low <= status <= high for low, high in self.ranges)
        return inside != self.negated


HeaderOp = Literal["=", "!=", "~", "!~", "present", "absent"]


@dataclass(frozen=True, slots=True)
class HeaderRule:
    name: str                                   # compared case-insensitively
    op: HeaderOp
    value: str = ""
    regex: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class BodyRule:
    regex: re.Pattern[bytes]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class HttpMatch:
    name: str
    status: tuple[StatusRule, ...] = ()        # none: 2xx and 3xx, as without a match
    headers: tuple[HeaderRule, ...] = ()
    body: BodyRule | None = None
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class HealthCheck:
    interval: float = 5.0
    jitter: float = 0.0
    fails: int = 1
    passes: int = 1
    port: int | None = None                     # None: each server's own port
    udp: bool = False
    match_name: str | None = None
    match: StreamMatch | HttpMatch | None = None
    mandatory: bool = False
    persistent: bool = False
    uri: str = "/"                              # http only
    timeout: float = 5.0                        # health_check_timeout (stream), proxy_read_timeout (http)
    connect_timeout: float = 5.0                # health_check_timeout (stream), proxy_connect_timeout (http)
    source: Source | None = field(default=None, compare=False)


# --- converters (called by the directive table) ------------------------------------------------

def decode_escapes(text: str) -> bytes:
    """nginx's `\\xHH` byte escapes in `send`/`expect` strings; other characters as UTF-8."""
    out = bytearray()
    pos = 0
    for found in _HEX.finditer(text):
        out += text[pos:found.start()].encode()
        out.append(int(found.group(1), 16))
        pos = found.end()
    out += text[pos:].encode()
    return bytes(out)


def _bytes_regex(text: str, flags: int, name: str, source: Source) -> re.Pattern[bytes]:
    try:
        # \xHH stays in the pattern: re reads it as that byte, even where it is a metacharacter.
        return re.compile(text.encode(), flags | re.DOTALL)
    except re.error as exc:
        raise ConfigError(f'"{name}" regex "{text}" is invalid: {exc}', source) from None


def _text_regex(text: str, flags: int, name: str, source: Source) -> re.Pattern[str]:
    try:
        return re.compile(text, flags)
    except re.error as exc:
        raise ConfigError(f'"{name}" regex "{text}" is invalid: {exc}', source) from None


def health_check(args: list[str], source: Source, *, http: bool) -> HealthCheck:
    options: dict[str, object] = {}
    for param in args:
        key, eq, value = param.partition("=")
        if eq and key in ("interval", "jitter"):
            options[key] = parse_time(value, f"health_check {key}", source)
            if key == "interval" and options[key] == 0:
                raise ConfigError('"health_check interval" must be greater than 0', source)
        elif eq and key in ("fails", "passes"):
            options[key] = parse_number(value, f"health_check {key}", source, 1)
        elif eq and key == "port":
            port = parse_number(value, "health_check port", source, 1)
            if port > 65535:
                raise ConfigError(f'invalid port in "{param}"', source)
            options["port"] = port
        elif eq and key == "match" and value:
            options["match_name"] = value
        elif eq and key == "uri" and http:
            if not value.startswith("/"):
                raise ConfigError(f'"health_check uri" must start with "/", got "{value}"', source)
            options["uri"] = value
        elif param == "udp" and not http:
            options["udp"] = True
        elif param in ("mandatory", "persistent"):
            options[param] = True
        elif key in ("type", "keepalive_time"):
            raise ConfigError(f'the "{key}" parameter of "health_check" is not supported', source)
        else:
            raise ConfigError(f'invalid parameter "{param}"', source)
    if options.get("persistent") and not options.get("mandatory"):
        raise ConfigError('"persistent" requires "mandatory" in "health_check"', source)
    return HealthCheck(source=source, **options)  # type: ignore[arg-type]


def stream_health_check(args: list[str], source: Source) -> HealthCheck:
    return health_check(args, source, http=False)


def http_health_check(args: list[str], source: Source) -> HealthCheck:
    return health_check(args, source, http=True)


def send(args: list[str], source: Source) -> bytes:
    return decode_escapes(args[0])


def expect(args: list[str], source: Source) -> Expect:
    if len(args) == 2:
        if args[0] not in ("~", "~*"):
            raise ConfigError(f'invalid parameter "{args[0]}" in "expect", it must be "~" or "~*"', source)
        flags = re.IGNORECASE if args[0] == "~*" else 0
        return Expect(args[1], regex=_bytes_regex(args[1], flags, "expect", source))
    return Expect(args[0], literal=decode_escapes(args[0]))


def status(args: list[str], source: Source) -> StatusRule:
    negated = args[0] == "!"
    words = args[1:] if negated else args
    if not words:
        raise ConfigError('invalid number of arguments in "status" directive', source)
    ranges: list[tuple[int, int]] = []
    for word in words:
        low, dash, high = word.partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ConfigError(f'invalid status "{word}"', source) from None
        if not (100 <= first <= last <= 599) or not (low.isdigit() and (high.isdigit() or not dash)):
            raise ConfigError(f'invalid status "{word}"', source)
        ranges.append((first, last))
    return StatusRule(tuple(ranges), negated)


def header(args: list[str], source: Source) -> HeaderRule:
    if len(args) == 1:
        if args[0] == "!":
            raise ConfigError('invalid number of arguments in "header" directive', source)
        return HeaderRule(args[0], "present")
    if len(args) == 2:
        if args[0] != "!":
            raise ConfigError(f'invalid parameter "{args[0]}" in "header"', source)
        return HeaderRule(args[1], "absent")
    name, op, value = args
    if op in ("=", "!="):
        return HeaderRule(name, op, value)  # type: ignore[arg-type]
    if op in ("~", "!~"):
        return HeaderRule(name, op, value, _text_regex(value, 0, "header", source))  # type: ignore[arg-type]
    raise ConfigError(f'invalid operator "{op}" in "header", it must be "=", "!=", "~" or "!~"', source)


def body(args: list[str], source: Source) -> BodyRule:
    if args[0] not in ("~", "!~"):
        raise ConfigError(f'invalid operator "{args[0]}" in "body", it must be "~" or "!~"', source)
    return BodyRule(_bytes_regex(args[1], 0, "body", source), args[0] == "!~")
