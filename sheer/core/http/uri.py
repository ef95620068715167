"""Request URI normalization ($uri), the URI sent upstream (proxy_pass URI rules), and the URL of
a `proxy_pass` written with variables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from sheer.config.model import Location, ProxyPass
from sheer.config.values import SUN_PATH_MAX

_SAFE = "/:@!$&'()*+,;=-._~"


_COMPLEX = re.compile(rb"%|/\.|//|#")
_QUOTED = re.compile(rb"%([0-9A-Fa-f]{2})")
_BAD_QUOTE = re.compile(rb"%(?![0-9A-Fa-f]{2})|%00")


# Plain targets come again and again (a bounded memo of their $uri and $args).
_seen: dict[bytes, tuple[str, str]] = {}


def parse_uri(target: bytes, empty_path: bool = False, merge_slashes: bool = True) -> tuple[str, str] | None:
    """$uri and $args of a request target as nginx computes them (ngx_http_parse_complex_uri): the path
    percent-decoded, "." and ".." segments resolved, slashes merged (unless `merge_slashes off`), the
    fragment dropped. None when nginx answers 400: a bad %-escape, %00, or ".." above the root."""
    known = _seen.get(target)
    if known is not None and not empty_path:
        return known
    if not _COMPLEX.search(target):
        path, _, args = target.partition(b"?")
        parsed = ("/" if empty_path else path.decode("latin-1")), args.decode("latin-1")
        if not empty_path and len(target) <= 256:
            if len(_seen) >= 1024:
                _seen.clear()
            _seen[target] = parsed
        return parsed
    cut = len(target)
    for mark in (b"?", b"#"):
        at = target.find(mark)
        if 0 <= at < cut:
            cut = at
    path = target[:cut]
    args = b""
    if target[cut:cut + 1] == b"?":
        args = target[cut + 1:].partition(b"#")[0]
    if _BAD_QUOTE.search(path):
        return None
    decoded = _QUOTED.sub(lambda m: bytes((int(m[1], 16),)), path) if b"%" in path else path
    segments = decoded.split(b"/")[1:] if decoded.startswith(b"/") else [decoded]
    out: list[bytes] = []
    for segment in segments[:-1]:
        if segment == b"..":
            if not out:
                return None
            out.pop()
        elif segment != b"." and (segment or not merge_slashes):
            out.append(segment)
    last = segments[-1] if segments else b""
    if last == b"..":
        if not out:
            return None
        out.pop()
        last = b""
    elif last == b".":
        last = b""
    uri = b"/" + b"/".join([*out, last]) if out or last else b"/"
    return uri.decode("latin-1"), args.decode("latin-1")


def upstream_uri(location: Location, proxy_pass: ProxyPass, raw_uri: str, uri: str, args: str,
                 whole: bool = False) -> str:
    """Without a URI part in proxy_pass, the client's request URI unchanged; with one, the matched
    location prefix of the normalized URI is replaced by it. A URL written with variables sends its
    URI part as it is (nginx: "the URI ... is passed to the server as is"). `whole`: the rewrite
    module's `break` after a new URI (nginx's valid_location 0): `raw_uri` (made from it) as it is."""
    if proxy_pass.url is not None or whole:
        return raw_uri
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


class BadProxyUrl(Exception):
    """A `proxy_pass` URL made from variables that is not one (nginx logs it, the request gets 500)."""


@dataclass(frozen=True, slots=True)
class ProxyUrl:
    """`proxy_pass http://$target...` rendered for one request (ngx_http_proxy_eval)."""

    host: str                  # a name, an IPv4 address, or an IPv6 address (no brackets)
    port: int
    no_port: bool              # no port written: an upstream block may match by name
    uri: str                   # the URI part ("" when none: the client's URI is sent)
    proxy_host: str            # $proxy_host: host[:port] as written, without the default :80


def parse_proxy_url(text: str) -> ProxyUrl:
    if text[:7].lower() != "http://" or len(text) <= 7:
        raise BadProxyUrl(f'invalid URL prefix in "{text}"')
    rest = text[7:]
    if rest[:5].lower() == "unix:":
        return _unix_url(rest)
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    hostport, uri = rest[:cut], rest[cut:]
    if uri.startswith("?"):
        uri = "/" + uri
    if hostport.startswith("["):
        end = hostport.find("]")
        host, tail = (hostport[1:end], hostport[end + 1:]) if end > 0 else ("", "")
        if end < 0 or ":" not in host or (tail and not tail.startswith(":")):
            raise BadProxyUrl(f'invalid IPv6 address in upstream "{rest}"')
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text_or = hostport.partition(":")
        port_text = port_text_or if colon else None
    if not host:
        raise BadProxyUrl(f'no host in upstream "{rest}"')
    if port_text is not None and not (port_text.isascii() and port_text.isdigit()
                                      and 0 < int(port_text) < 65536):
        raise BadProxyUrl(f'invalid port in upstream "{rest}"')
    port = int(port_text) if port_text is not None else 80
    shown = hostport.removesuffix(":80")
    return ProxyUrl(host, port, port_text is None, uri, shown)


def _unix_url(rest: str) -> ProxyUrl:
    """`http://unix:/path[:uri]` (nginx's ngx_parse_unix_domain_url with uri_part): the path ends at
    the next colon; nginx sends `Host: localhost` to a unix-domain socket."""
    path, _, uri = rest[5:].partition(":")
    if not path:
        raise BadProxyUrl(f'no path in the unix domain socket in upstream "{rest}"')
    if len(path.encode()) + 1 > SUN_PATH_MAX:
        raise BadProxyUrl(f'too long path in the unix domain socket in upstream "{rest}"')
    return ProxyUrl("unix:" + path, 0, False, uri, "localhost")
