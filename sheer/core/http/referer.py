"""`$invalid_referer` (ngx_http_referer_variable): "" when the request's Referer is one `valid_referers`
allows (or the location has none), else "1"."""

from __future__ import annotations

from sheer.config.referers import Referers


def invalid_referer(referers: Referers | None, referer: str | None) -> str:
    if referers is None:
        return ""
    if referer is None:
        return "" if referers.none else "1"
    lower = referer[:8].lower()
    if len(referer) < 11:           # shorter than "http://i.ru": no referer a browser sends
        return "" if referers.blocked else "1"
    if lower.startswith("http://"):
        rest = referer[7:]
    elif lower.startswith("https://"):
        rest = referer[8:]
    else:
        return "" if referers.blocked else "1"
    end = len(rest)
    for index, char in enumerate(rest):
        if char in "/:":
            end = index
            break
    host = rest[:end].lower()
    if len(host) > 256:
        return "1"
    found, uri = _host(referers, host)
    if found:
        if uri is None:
            return ""
        path_at = rest.find("/", end)
        path = rest[path_at:] if path_at >= 0 else ""
        return "" if path.startswith(uri) else "1"
    for regex in referers.host_regexes:
        if regex.search(host):
            return ""
    for regex in referers.regexes:
        if regex.search(rest):
            return ""
    return "1"


def _host(referers: Referers, host: str) -> tuple[bool, str | None]:
    """nginx's ngx_hash_find_combined: the exact name, else the longest `*.` wildcard, else `.*`."""
    for name, uri in referers.exact:
        if name == host:
            return True, uri
    for suffix, uri in referers.heads:
        if host.endswith(suffix):
            return True, uri
    for prefix, uri in referers.tails:
        if host.startswith(prefix):
            return True, uri
    return False, None
