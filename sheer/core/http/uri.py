"""Request URI normalization ($uri) and the URI sent upstream (proxy_pass URI rules)."""

from __future__ import annotations

from urllib.parse import quote, unquote

from sheer.config.model import Location, ProxyPass

_SAFE = "/:@!$&'()*+,;=-._~"


class BadUri(Exception):
    pass


def split_uri(raw: str) -> tuple[str, str]:
    """`/a/b?x=1` -> ("/a/b", "x=1")."""
    path, _, args = raw.partition("?")
    return path, args


def normalize(path: str) -> str:
    """nginx's $uri: percent-decoded, `//` merged, `.` and `..` resolved. Raises BadUri above root."""
    if not path.startswith("/"):
        raise BadUri(path)
    if "%" not in path and "//" not in path and "/." not in path:
        return path
    decoded = unquote(path, errors="surrogateescape") if "%" in path else path
    out: list[str] = []
    segments = decoded.split("/")
    for segment in segments[1:-1]:
        if segment in ("", "."):
            continue
        if segment == "..":
            if not out:
                raise BadUri(path)
            out.pop()
            continue
        out.append(segment)
    last = segments[-1]
    if last == "..":
        if not out:
            raise BadUri(path)
        out.pop()
        last = ""
    elif last == ".":
        last = ""
    out.append(last)
    return "/" + "/".join(out)


def upstream_uri(location: Location, proxy_pass: ProxyPass, raw_uri: str, uri: str, args: str) -> str:
    """Without a URI part in proxy_pass, the client's request URI unchanged; with one, the matched
    location prefix of the normalized URI is replaced by it."""
    if proxy_pass.uri is None:
        return raw_uri
    if location.exact:
        rest = ""
    elif uri.startswith(location.path):
        rest = uri[len(location.path):]
    else:
        rest = uri
    target = proxy_pass.uri + quote(rest, safe=_SAFE, errors="surrogateescape")
    return f"{target}?{args}" if args else target
