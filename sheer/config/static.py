"""Static files as nginx serves them (ngx_http_static_module, ngx_http_index_module, try_files, the
core module's root/alias/types/default_type/etag/if_modified_since/max_ranges/log_not_found, and the
headers module's `expires`): the directives, their nginx checks and defaults, and `Static`, what one
location (or a server, for requests no location takes) serves files with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sheer.config.errors import ConfigError, Source
from sheer.config.table import HTTP_ALL, HTTP_LOCATION, HTTP_SERVER, TYPES, Convert, Directive, entry
from sheer.config.template import HTTP_PREFIXES, HTTP_VARIABLES, Template, compile_template
from sheer.config.values import parse_flag, parse_number

REGEX_ALIAS = -1          # `alias` in a regex location: the whole path (nginx's NGX_MAX_SIZE_T_VALUE)
CAPTURES = tuple("0123456789")     # $1..$9 of a regex location, in root/alias/try_files/index

# nginx's built-in types when no `types` block is given (ngx_http_core_default_types)
DEFAULT_TYPES = {"html": "text/html", "gif": "image/gif", "jpg": "image/jpeg"}

ExpiresMode = Literal["off", "epoch", "max", "access", "modified", "daily"]


@dataclass(frozen=True, slots=True)
class Expires:
    """`expires [modified] TIME|epoch|max|off|@TIME` (ngx_http_headers_filter_module)."""

    mode: ExpiresMode
    seconds: int = 0
    value: Template | None = None   # written with variables: parsed per request (then `mode` is the
                                    # written one: "access" or "modified")


@dataclass(frozen=True, slots=True)
class TryFiles:
    """`try_files file ... uri|=code`: the names tested (a trailing "/" tests a directory, and is cut
    off as nginx does), then the fallback: a URI, a named location, or a code."""

    names: tuple[tuple[Template, bool], ...]
    fallback: Template | None
    code: int | None = None


@dataclass(frozen=True, slots=True)
class Static:
    root: Template                       # absolute (relative ones are under the prefix); alias too
    alias: int = 0                       # 0: root; >0: the location prefix `alias` replaces; REGEX_ALIAS
    index: tuple[Template, ...] = ()
    try_files: TryFiles | None = None
    types: tuple[tuple[str, str], ...] = tuple(DEFAULT_TYPES.items())    # extension (lowercase), type
    default_type: str = "text/plain"
    log_not_found: bool = True
    etag: bool = True
    if_modified_since: Literal["off", "exact", "before"] = "exact"
    max_ranges: int | None = None        # None: unlimited
    expires: Expires | None = None
    disable_symlinks: bool = False       # `on`: a path with a symbolic link in it is refused (403)
    regex: re.Pattern[str] | None = None  # the location's, when a path uses its captures
    prefix: str = ""                     # where a root made from variables is relative to

    def type_of(self, path: str) -> str:
        """ngx_http_set_content_type: by the extension after the last "." of the last segment."""
        name = path.rsplit("/", 1)[-1]
        dot = name.rfind(".")
        if dot >= 0:
            found = dict(self.types).get(name[dot + 1:].lower())
            if found is not None:
                return found
        return self.default_type


def path_template(text: str, source: Source) -> Template:
    return compile_template(text, source, HTTP_VARIABLES, HTTP_PREFIXES + CAPTURES)


def _root(args: list[str], src: Source) -> str:
    for banned in ("document_root", "realpath_root"):
        if f"${banned}" in args[0] or f"${{{banned}}}" in args[0]:
            raise ConfigError(f'the ${banned} variable cannot be used in the "root" directive', src)
    path_template(args[0], src)
    return args[0]


def _index(args: list[str], src: Source) -> list[str]:
    for name in args:
        if not name:
            raise ConfigError('index "" in "index" directive is invalid', src)
        path_template(name, src)
    for name in args[:-1]:
        if name.startswith("/"):
            raise ConfigError('only the last index in "index" directive should be absolute', src)
    return args


def _try_files(args: list[str], src: Source) -> list[str]:
    last = args[-1]
    if last.startswith("="):
        code = last[1:]
        if not (code.isascii() and code.isdigit()) or not 0 < int(code) < 1000:
            raise ConfigError(f'invalid code "{last}"', src)
    for name in args if not last.startswith("=") else args[:-1]:
        path_template(name, src)
    return args


def _if_modified_since(args: list[str], src: Source) -> str:
    if args[0] not in ("off", "exact", "before"):
        raise ConfigError(f'invalid value "{args[0]}" in "if_modified_since" directive, it must be "off", '
                          '"exact" or "before"', src)
    return args[0]


def _disable_symlinks(args: list[str], src: Source) -> bool:
    if args[0] == "off" and len(args) == 1:
        return False
    if args[0] == "on" and len(args) == 1:
        return True
    raise ConfigError(f'"disable_symlinks {" ".join(args)}" is not supported: sheer has "off" (nginx\'s '
                      'default) and "on"', src)


_SECONDS = {"y": 31536000, "M": 2592000, "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_TIME = re.compile(r"([0-9]+)([yMwdhms]?)")


def parse_seconds(value: str) -> int | None:
    """ngx_parse_time(value, is_sec=1): `2048`, `1h30m`, `15h30m33s`; None when invalid."""
    total, pos, last = 0, 0, -1
    order = "yMwdhms"
    if not value:
        return None
    while pos < len(value):
        match = _TIME.match(value, pos)
        if match is None:
            return None
        unit = match.group(2) or "s"
        rank = order.index(unit)
        if rank <= last or (not match.group(2) and match.end() != len(value)):
            return None
        last = rank
        total += int(match.group(1)) * _SECONDS[unit]
        pos = match.end()
    return total if total <= 0x7FFFFFFF else None


def parse_expires(value: str, modified: bool) -> tuple[ExpiresMode, int] | str:
    """ngx_http_parse_expires: (mode, seconds), or nginx's reason it is invalid."""
    mode: ExpiresMode = "modified" if modified else "access"
    if not modified and value in ("epoch", "max", "off"):
        return value, 0           # type: ignore[return-value]
    minus = False
    if value.startswith("@"):
        if modified:
            return 'daily time cannot be used with "modified" parameter'
        mode, value = "daily", value[1:]
    elif value.startswith(("+", "-")):
        minus, value = value[0] == "-", value[1:]
    seconds = parse_seconds(value)
    if seconds is None:
        return "invalid value"
    if mode == "daily" and seconds > 24 * 60 * 60:
        return "daily time value must be less than 24 hours"
    return mode, -seconds if minus else seconds


def _expires(args: list[str], src: Source) -> Expires:
    if len(args) == 2 and args[0] != "modified":
        raise ConfigError('"expires" directive invalid value', src)
    text = args[-1]
    template = compile_template(text, src, HTTP_VARIABLES, HTTP_PREFIXES)
    if not template.is_literal:
        return Expires("modified" if len(args) == 2 else "access", 0, template)
    parsed = parse_expires(text, len(args) == 2)
    if isinstance(parsed, str):
        raise ConfigError(f'"expires" directive {parsed}', src)
    return Expires(parsed[0], parsed[1])


def _max_ranges(args: list[str], src: Source) -> int:
    return parse_number(args[0], "max_ranges", src)


def _flag(name: str) -> Convert:
    return lambda args, src: parse_flag(args[0], name, src)


DIRECTIVES: tuple[Directive, ...] = (
    entry("root", HTTP_ALL, (1, 1), _root),
    entry("alias", {HTTP_LOCATION}, (1, 1), _root),
    entry("index", HTTP_ALL, (1, None), _index),
    entry("try_files", {HTTP_SERVER, HTTP_LOCATION}, (2, None), _try_files),
    entry("types", HTTP_ALL, (0, 0), block=TYPES),
    entry("default_type", HTTP_ALL, (1, 1), lambda args, src: args[0]),
    entry("log_not_found", HTTP_ALL, (1, 1), _flag("log_not_found")),
    entry("etag", HTTP_ALL, (1, 1), _flag("etag")),
    entry("if_modified_since", HTTP_ALL, (1, 1), _if_modified_since),
    entry("max_ranges", HTTP_ALL, (1, 1), _max_ranges),
    entry("expires", HTTP_ALL, (1, 2), _expires),
    entry("disable_symlinks", HTTP_ALL, (1, 2), _disable_symlinks),
)
