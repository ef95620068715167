"""`add_header`, as nginx's headers filter adds them (ngx_http_headers_filter_module.c): to responses
whose status is 200, 201, 204, 206, 301, 302, 303, 304, 307 or 308, and with `always` to every one;
a value that renders empty adds nothing. `Last-Modified` and `ETag` replace the response's own (an
empty value removes it); any other name is one more header line, even when the response has one."""

from __future__ import annotations

from collections.abc import Iterable

from sheer.config.model import AddHeader
from sheer.core.variables import VariableSource, render_bytes

SUCCESS = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})
REPLACED = frozenset({b"last-modified", b"etag"})


def added(entries: Iterable[AddHeader], status: int, variables: VariableSource
          ) -> tuple[list[tuple[bytes, bytes]], frozenset[bytes]]:
    """The header lines to add, and the (lowercase) names of the response's own headers they replace."""
    lines: list[tuple[bytes, bytes]] = []
    replaced: set[bytes] = set()
    success = status in SUCCESS
    for entry in entries:
        if not (success or entry.always):
            continue
        name = entry.name.encode("latin-1")
        value = render_bytes(entry.value, variables)
        if name.lower() in REPLACED:
            # nginx keeps one of each: a later line replaces (an empty one removes) an earlier one
            replaced.add(name.lower())
            lines = [line for line in lines if line[0].lower() != name.lower()]
        if value:
            lines.append((name, value))
    return lines, frozenset(replaced)
