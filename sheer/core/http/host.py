"""A host name from the Host header or an absolute-form request line, as nginx 1.22 checks it
(ngx_http_validate_host), with the stricter literal and port of nginx 1.29.4: a port of digits up to
65535, nothing but a port after an IPv6 literal's "]", a "[" only to open one, which must close."""

from __future__ import annotations

import re

# What almost every Host is: lowercase labels, an optional port.
_PLAIN = re.compile(rb"([a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::([0-9]{0,5}))?")
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
    if plain is not None and (plain[2] is None or len(plain[2]) < 5 or int(plain[2]) <= 65535):
        name = plain[1].decode()
        if len(_seen) >= 1024:
            _seen.clear()
        _seen[host] = name
        return name
    if _BAD.search(host):
        return None
    if host.startswith(b"["):
        close = host.find(b"]")
        if close < 0:
            return None
        name, rest = host[:close + 1], host[close + 1:]
        if rest and rest[:1] != b":":
            return None
        port = rest[1:]
    else:
        name, _, port = host.partition(b":")
        if b"[" in name or b"]" in name:
            return None
    if port and not (port.isdigit() and int(port) <= 65535):
        return None
    if name and host.rfind(b".") == len(name) - 1:
        name = name[:-1]
    if not name:
        return None
    return name.lower().decode("latin-1")
