"""Looking a `map` up (ngx_http_map_find): the exact key (caseless), with `hostnames` the longest `*.`
then `.*` wildcard, then the regexes in order (their captures feed the value), else the default ("" if
none). A request or session keeps what a map gave it unless the map is `volatile`."""

from __future__ import annotations

import re
from typing import Protocol

from sheer.config.computed import Geo, Split
from sheer.config.model import Map
from sheer.config.template import Template
from sheer.core.geo import GeoTable
from sheer.core.split_clients import SplitTable
from sheer.core.variables import VariableSource, render


class Captures:
    """The value's variables: a regex's groups (`$1`, `$name`), then the request's or session's."""

    __slots__ = ("match", "source")

    def __init__(self, match: re.Match[str], source: VariableSource) -> None:
        self.match, self.source = match, source

    def variable(self, name: str) -> str:
        if name.isdigit():
            index = int(name)
            return (self.match.group(index) or "") if index <= (self.match.re.groups or 0) else ""
        if name in self.match.re.groupindex:
            return self.match.group(name) or ""
        return self.source.variable(name)


class MapTable:
    __slots__ = ("default", "exact", "heads", "map", "tails", "volatile")

    def __init__(self, made: Map) -> None:
        self.map = made
        self.volatile = made.volatile
        self.exact: dict[str, Template] = dict(made.exact)
        self.heads, self.tails, self.default = made.heads, made.tails, made.default

    def evaluate(self, source: VariableSource) -> str:
        made = self.map
        key = render(made.string, source)
        lower = key.lower()
        if made.hostnames:
            lower = lower.removesuffix(".")
        found = self.exact.get(lower)
        if found is not None:
            return render(found, source)
        if made.hostnames:
            for suffix, value in self.heads:
                if lower.endswith(suffix):
                    return render(value, source)
            for prefix, value in self.tails:
                if lower.startswith(prefix):
                    return render(value, source)
        for regex, value in made.regexes:
            match = regex.search(key)
            if match is not None:
                return render(value, Captures(match, source))
        return render(self.default, source) if self.default is not None else ""


class Table(Protocol):
    """A variable made from others when asked: a `map`'s or a `geo`'s (sheer.core.geo)."""

    volatile: bool

    def evaluate(self, source: VariableSource) -> str: ...


def lookup(tables: dict[str, Table], name: str, source: VariableSource,
           cache: dict[str, str]) -> str | None:
    """`$name` if a map or a geo makes it (kept in `cache` unless volatile), else None."""
    table = tables.get(name)
    if table is None:
        return None
    if table.volatile:
        return table.evaluate(source)
    value = cache.get(name)
    if value is None:
        value = cache[name] = table.evaluate(source)
    return value


def tables_of(maps: tuple[Map, ...], geos: tuple[Geo, ...] = (),
              splits: tuple[Split, ...] = ()) -> dict[str, Table]:
    tables: dict[str, Table] = {made.variable: MapTable(made) for made in maps}
    tables.update((geo.variable, GeoTable(geo)) for geo in geos)
    tables.update((split.variable, SplitTable(split)) for split in splits)
    return tables
