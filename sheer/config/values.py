"""Converters for directive arguments, with nginx's syntax and error wording."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from sheer.config.errors import ConfigError, Source

_TIME_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
               "M": 2592000.0, "y": 31536000.0}
_TIME_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|M|y)?")
# nginx (ngx_parse_time): units in decreasing order, each at most once; a bare number is seconds.
_TIME_ORDER = ("y", "M", "w", "d", "h", "m", "s", "ms")
_SIZE = re.compile(r"([0-9]+)([kKmMgG]?)")
MAX_INT = 2**63 - 1      # NGX_MAX_INT_T_VALUE on 64-bit: numbers, sizes and times beyond it overflow in nginx

# A host name as getaddrinfo and DNS take it: labels of letters, digits, "-" and "_" (RFC 952/1123,
# and the underscores service names use), dot-separated, optionally fully qualified.
_NAME = re.compile(r"(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
                   r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?")

_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def unescape(word: str) -> str:
    """Undo nginx's token escapes (\\" \\' \\\\ \\t \\r \\n); others such as \\x24 stay as written."""
    if "\\" not in word:
        return word
    out: list[str] = []
    i = 0
    while i < len(word):
        ch = word[i]
        if ch == "\\" and i + 1 < len(word) and word[i + 1] in _ESCAPES:
            out.append(_ESCAPES[word[i + 1]])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_time(value: str, name: str, source: Source) -> float:
    """nginx time: `10`, `10s`, `500ms`, `1m30s`; a bare number means seconds."""
    pos = 0
    total = 0.0
    step = -1
    while pos < len(value) or pos == 0:
        match = _TIME_PART.match(value, pos)
        unit = match.group(2) if match is not None else None
        rank = _TIME_ORDER.index(unit) if unit else _TIME_ORDER.index("s")
        if match is None or rank <= step or (unit is None and match.end() != len(value)):
            raise ConfigError(f'"{name}" directive invalid value "{value}", expected a time such as 10s, '
                              "500ms or 1m30s", source)
        step = rank
        total += int(match.group(1)) * _TIME_UNITS[unit or "s"]
        pos = match.end()
    if total * 1000 > MAX_INT:    # nginx (ngx_parse_time) keeps milliseconds in an ngx_int_t
        raise ConfigError(f'"{name}" directive invalid value "{value!s:.40}", the time is too large', source)
    return total


def parse_size(value: str, name: str, source: Source) -> int:
    match = _SIZE.fullmatch(value)
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()] if match else 1
    # nginx (ngx_parse_size): at most NGX_MAX_OFF_T_VALUE once scaled
    if match is None or int(match.group(1)) * scale > MAX_INT:
        raise ConfigError(f'"{name}" directive invalid value "{value}", expected a size such as 64k', source)
    return int(match.group(1)) * scale


def parse_number(value: str, name: str, source: Source, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """nginx's ngx_atoi, which refuses what overflows NGX_MAX_INT_T_VALUE; `maximum` where nginx's
    directive has a tighter range."""
    if not (value.isascii() and value.isdigit()) or not minimum <= int(value) <= maximum:
        wanted = "a non-negative number" if minimum == 0 else f"a number >= {minimum}"
        if maximum != MAX_INT:
            wanted = f"a number from {minimum} to {maximum}"
        raise ConfigError(f'"{name}" takes {wanted}, got "{value!s:.40}"', source)
    return int(value)


def parse_flag(value: str, name: str, source: Source) -> bool:
    if value == "on":
        return True
    if value == "off":
        return False
    raise ConfigError(f'invalid value "{value}" in "{name}" directive, it must be "on" or "off"', source)


UNIX = "unix:"
# sizeof(struct sockaddr_un.sun_path) on Linux: the path and its terminating NUL must fit
SUN_PATH_MAX = 108


def is_unix(host: str) -> bool:
    """A unix-domain socket address, written as nginx writes it: `unix:/path`."""
    return host.startswith(UNIX)


def sockaddr(host: str, port: int) -> tuple[str, int] | str:
    """The address as the socket module takes it: the path of a unix-domain socket, else (host, port)."""
    return host[len(UNIX):] if host.startswith(UNIX) else (host, port)


class Endpoint:
    """What a listen address and an upstream peer share: `host` and `port`, where a host written
    `unix:/path` is a unix-domain socket (port 0), as nginx writes one."""

    __slots__ = ()
    host: str
    port: int

    @property
    def unix(self) -> bool:
        return self.host.startswith(UNIX)

    @property
    def family(self) -> int:
        """4 or 6; 0 for a unix-domain socket."""
        return 0 if self.host.startswith(UNIX) else 6 if ":" in self.host else 4

    @property
    def sockaddr(self) -> tuple[str, int] | str:
        """What bind() and connect() take: (host, port) (the wildcard as 0.0.0.0), or the path."""
        return sockaddr(self.host or "0.0.0.0", self.port)


@dataclass(frozen=True, slots=True)
class HostPort:
    # a literal IPv4/IPv6 address, "" for the wildcard, a name to resolve, or `unix:/path`
    host: str
    port: int | None   # None when the text carried no port (always for a unix-domain socket)

    @property
    def family(self) -> int:
        return 0 if is_unix(self.host) else 6 if ":" in self.host else 4

    @property
    def unix(self) -> bool:
        return is_unix(self.host)

    def __str__(self) -> str:
        if self.unix:
            return self.host
        host = f"[{self.host}]" if ":" in self.host else (self.host or "*")
        return host if self.port is None else f"{host}:{self.port}"


def parse_unix(text: str, source: Source, uri_part: bool = False) -> tuple[HostPort, str | None]:
    """`unix:/path` (nginx's ngx_parse_unix_domain_url). With `uri_part` (proxy_pass), the path
    ends at the next colon and what follows it is the URI: `unix:/run/app.sock:/api/`."""
    path, uri = text[len(UNIX):], None
    if uri_part and ":" in path:
        path, _, uri = path.partition(":")
    if not path:
        raise ConfigError(f'no path in the unix domain socket in "{text}"', source)
    if len(path.encode()) + 1 > SUN_PATH_MAX:
        raise ConfigError(f'too long path in the unix domain socket in "{text}"', source)
    return HostPort(UNIX + path, None), uri


def _parse_port(text: str, whole: str, source: Source) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise ConfigError(f'invalid port in "{whole}"', source)
    return int(text)


def is_address(host: str) -> bool:
    """An IP address literal (or "" for the wildcard): nothing to resolve."""
    if not host:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _parse_host(text: str, whole: str, source: Source, wildcard_ok: bool) -> str:
    """An address literal (normalized), or a name: names are resolved by sheer.config.names."""
    if text in ("*", "") and wildcard_ok:
        return ""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not text or not _NAME.fullmatch(text):
        raise ConfigError(f'invalid host in "{whole}"', source)
    return text


def parse_host_port(text: str, source: Source, *, wildcard_ok: bool = False,
                    port_only_ok: bool = False) -> HostPort:
    """`1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `*:80`, `80` (when port_only_ok), `app.internal:80`,
    `unix:/path`."""
    if text[:5].lower() == UNIX:
        return parse_unix(UNIX + text[5:], source)[0]
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigError(f'invalid IPv6 address in "{text}"', source)
        host = _parse_host(text[1:end], text, source, wildcard_ok)
        if ":" not in host:
            raise ConfigError(f'invalid IPv6 address in "{text}"', source)
        rest = text[end + 1:]
        if rest and not rest.startswith(":"):
            raise ConfigError(f'invalid address "{text}"', source)
        return HostPort(host, _parse_port(rest[1:], text, source) if rest else None)
    if port_only_ok and text.isascii() and text.isdigit():
        return HostPort("", _parse_port(text, text, source))
    if text.count(":") == 1:
        host, port = text.split(":")
        return HostPort(_parse_host(host, text, source, wildcard_ok), _parse_port(port, text, source))
    return HostPort(_parse_host(text, text, source, wildcard_ok), None)
