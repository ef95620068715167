"""What an entry of the directive table is, and the contexts it names (sheer.config.directives holds the
table; sheer.config.accepted and sheer.config.unsupported add what sheer reads without acting on it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sheer.config.errors import Source

Convert = Callable[[list[str], Source], Any]
NoticeLevel = Literal["notice", "warn"]
# What `sheer -t` says about a directive it accepts without doing what nginx does with it (None: nothing).
Notice = Callable[[list[str]], tuple[NoticeLevel, str] | None]

MAIN, EVENTS = "main", "events"
HTTP, HTTP_SERVER, HTTP_LOCATION, HTTP_UPSTREAM = "http", "http.server", "http.location", "http.upstream"
STREAM, STREAM_SERVER, STREAM_UPSTREAM = "stream", "stream.server", "stream.upstream"
HTTP_IF = "http.if"      # `if (...) { }` in a server (nginx's NGX_HTTP_SIF_CONF): the rewrite module's only
HTTP_LIF = "http.lif"    # `if (...) { }` in a location (NGX_HTTP_LIF_CONF): a nameless location of its own
HTTP_LMT = "http.lmt"    # `limit_except METHOD ... { }` (NGX_HTTP_LMT_CONF): another nameless location
HTTP_ALL = frozenset({HTTP, HTTP_SERVER, HTTP_LOCATION})
STREAM_ALL = frozenset({STREAM, STREAM_SERVER})
STREAM_MATCH, HTTP_MATCH = "stream.match", "http.match"
MAP = "map"              # `map $a $b { key value; }`: every line a key and its value
GEO = "geo"              # `geo $a { 192.0.2.0/24 value; }`: the same, with addresses for keys
SPLIT = "split_clients"  # `split_clients $a $b { 50% value; * other; }`: the same, with percentages
TYPES = "types"          # `types { text/html html htm; }`: every line a MIME type and its extensions


@dataclass(frozen=True, slots=True)
class Directive:
    name: str
    contexts: frozenset[str]
    nargs: tuple[int, int | None]          # minimum and maximum argument count (None: any)
    convert: Convert | None = None         # None: keep the (unescaped) arguments as they are
    block: str | None = None               # the context a block directive opens
    multi: bool = False                    # may repeat; values are collected in order
    todo: str | None = None                # planned but not built yet: refused, never ignored
    notice: Notice | None = None           # accepted, but sheer does not do (all of) what nginx does
    key: str | None = None                 # multi: collected under this name (allow and deny in one list)
    script: bool = False                   # also kept in the block's "script" list, in the order written


def entry(name: str, contexts: frozenset[str] | set[str], nargs: tuple[int, int | None],
          convert: Convert | None = None, **kw: Any) -> Directive:
    return Directive(name, frozenset(contexts), nargs, convert, **kw)
