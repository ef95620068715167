"""A host name from the Host header or an absolute-form request line, as nginx 1.22 checks it
(ngx_http_validate_host)."""

from __future__ import annotations

import re

# What almost every Host is: lowercase labels, an optional port.
_PLAIN = re.compile(rb"([a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::[0-9]*)?")
# Two dots in a row, a path separator, a space or a control character: nginx answers 400.
_BAD = re.compile(rb"\.\.|[/\x00-\x20\x7f]")


# The same few Host values come again and again: their verdicts are kept (a bounded memo).
_seen: dict[bytes, str] = {}


def validate_host(host: bytes) -> str | None:
    """The server name ($host): without the port, lowercase, without a trailing dot; None when
    nginx refuses it."""
    known = _seen.get(host)
    if known is not None:
        return known
    plain = _PLAIN.fullmatch(host)
    if plain is not None:
        name = plain[1].decode()
        if len(_seen) >= 1024:
            _seen.clear()
        _seen[host] = name
        return name
    if _BAD.search(host):
        return None
    if host.startswith(b"["):
        close = host.find(b"]")
        name = host[:close + 1] if close >= 0 else host
    else:
        name = host.partition(b":")[0]
    if name and host.rfind(b".") == len(name) - 1:
        name = name[:-1]
    if not name:
        return None
    return name.lower().decode("latin-1")
