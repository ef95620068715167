"""`gzip` and its companions (nginx's ngx_http_gzip_filter_module, and the core module's gzip_vary,
gzip_http_version, gzip_proxied and gzip_disable): the directives, their nginx checks and defaults, and
`Gzip`, what one location (or a server, for requests no location takes) compresses with. A location with
`gzip off` (the default) has no `Gzip`: its responses never look at Accept-Encoding."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sheer.config.errors import ConfigError, Source
from sheer.config.regex import compile_regex
from sheer.config.table import HTTP_ALL, Directive, entry
from sheer.config.values import parse_flag, parse_number, parse_size

PROXIED = ("off", "expired", "no-cache", "no-store", "private", "no_last_modified", "no_etag", "auth", "any")
ANY_TYPE = "*"


@dataclass(frozen=True, slots=True)
class Gzip:
    types: frozenset[str] = frozenset({"text/html"})   # lower case; {"*"}: every type
    min_length: int = 20
    comp_level: int = 1
    proxied: frozenset[str] = frozenset({"off"})
    vary: bool = False
    http_version: int = 11                    # gzip_http_version 1.1 (11, the default) or 1.0 (10)
    disable_msie6: bool = False
    disable: tuple[re.Pattern[bytes], ...] = ()   # gzip_disable's regular expressions, on User-Agent


def _http_version(args: list[str], src: Source) -> str:
    if args[0] not in ("1.0", "1.1"):
        raise ConfigError(f'invalid value "{args[0]}" in "gzip_http_version" directive, it must be "1.0" or '
                          '"1.1"', src)
    return args[0]


def _proxied(args: list[str], src: Source) -> frozenset[str]:
    for value in args:
        if value not in PROXIED:
            raise ConfigError(f'invalid value "{value}"', src)      # ngx_conf_set_bitmask_slot
    return frozenset(args)


def _types(args: list[str], src: Source) -> list[str]:
    return [value.lower() for value in args]


def _disable(args: list[str], src: Source) -> list[object]:
    """`msie6`, or a regular expression matched without case on User-Agent (nginx's NGX_REGEX_CASELESS)."""
    found: list[object] = []
    for value in args:
        if value == "msie6":
            found.append(value)
        else:
            pattern = compile_regex(value, src, caseless=True)
            found.append(re.compile(pattern.pattern.encode("latin-1", "replace"), re.IGNORECASE))
    return found


def _buffers(args: list[str], src: Source) -> tuple[int, int]:
    return parse_number(args[0], "gzip_buffers", src, 1), parse_size(args[1], "gzip_buffers", src)


DIRECTIVES: tuple[Directive, ...] = (
    entry("gzip", HTTP_ALL, (1, 1), lambda args, src: parse_flag(args[0], "gzip", src)),
    entry("gzip_vary", HTTP_ALL, (1, 1), lambda args, src: parse_flag(args[0], "gzip_vary", src)),
    entry("gzip_proxied", HTTP_ALL, (1, None), _proxied),
    entry("gzip_comp_level", HTTP_ALL, (1, 1),
          lambda args, src: parse_number(args[0], "gzip_comp_level", src, 1, 9)),
    # zlib sizes its own buffers: read and checked, nothing to do
    entry("gzip_buffers", HTTP_ALL, (2, 2), _buffers),
    entry("gzip_http_version", HTTP_ALL, (1, 1), _http_version),
    entry("gzip_types", HTTP_ALL, (1, None), _types, multi=True),
    entry("gzip_min_length", HTTP_ALL, (1, 1), lambda args, src: parse_size(args[0], "gzip_min_length", src)),
    entry("gzip_disable", HTTP_ALL, (1, None), _disable, multi=True),
)
