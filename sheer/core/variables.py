"""Render compiled templates. Values come from a per-request/session object; nothing here does I/O."""

from __future__ import annotations

import ipaddress
import time as _time
from collections.abc import Callable, Mapping
from typing import Protocol

from sheer.config.template import Template, Var


class VariableSource(Protocol):
    def variable(self, name: str) -> str: ...


def render(template: Template, source: VariableSource) -> str:
    parts = template.parts
    if len(parts) == 1:      # a literal, or one variable alone ("$remote_addr"): no join
        part = parts[0]
        return part if isinstance(part, str) else source.variable(part.name)
    return "".join(part if isinstance(part, str) else source.variable(part.name) for part in parts)


def render_bytes(template: Template, source: VariableSource) -> bytes:
    return render(template, source).encode("latin-1", "replace")


def binary_address(address: str) -> str:
    """nginx's $binary_remote_addr: the address's 4 or 16 bytes, carried as latin-1 text so that
    rendering a template back to bytes (latin-1) yields exactly those bytes."""
    try:
        return ipaddress.ip_address(address).packed.decode("latin-1")
    except ValueError:
        return ""


class _PerSecond:
    """A time's text made once per second, as nginx keeps its cached log times (ngx_time_update)."""

    __slots__ = ("make", "second", "text")

    def __init__(self, make: Callable[[_time.struct_time], str]) -> None:
        self.make, self.second, self.text = make, -1, ""

    def __call__(self, now: float) -> str:
        second = int(now)
        if second != self.second:
            self.text, self.second = self.make(_time.localtime(second)), second
        return self.text


def _iso8601(when: _time.struct_time) -> str:
    zone = _time.strftime("%z", when)
    return _time.strftime("%Y-%m-%dT%H:%M:%S", when) + zone[:-2] + ":" + zone[-2:]


# nginx's $time_local (26/Nov/2026:15:46:37 +0000) and $time_iso8601 (2026-11-26T15:46:37+00:00)
time_local = _PerSecond(lambda when: _time.strftime("%d/%b/%Y:%H:%M:%S %z", when))
time_iso8601 = _PerSecond(_iso8601)


# Variables nginx marks not_found when they have no value (a header not sent, no upstream tried, no
# PROXY protocol header): its access log writes them `-` (nothing with escape=json or none).
_NOT_FOUND_PREFIXES = ("http_", "sent_http_", "sent_trailer_", "upstream_", "cookie_", "arg_",
                       "proxy_protocol_")
_NOT_FOUND_NAMES = frozenset({"args", "query_string", "remote_user", "content_length", "content_type",
                              "request_body", "gzip_ratio"})


def not_found_when_empty(name: str) -> bool:
    return name in _NOT_FOUND_NAMES or name.startswith(_NOT_FOUND_PREFIXES)


class MappingSource:
    """A VariableSource from a dict of values and lazily computed ones; unknown names render empty."""

    __slots__ = ("lazy", "values")

    def __init__(self, values: Mapping[str, str],
                 lazy: Mapping[str, Callable[[], str]] | None = None) -> None:
        self.values = values
        self.lazy = lazy or {}

    def variable(self, name: str) -> str:
        value = self.values.get(name)
        if value is not None:
            return value
        compute = self.lazy.get(name)
        return compute() if compute is not None else ""


__all__ = ["MappingSource", "Var", "VariableSource", "not_found_when_empty", "render", "render_bytes",
           "time_iso8601", "time_local"]
