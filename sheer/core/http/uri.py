"""Request URI normalization ($uri), the URI sent upstream (proxy_pass URI rules), and the URL of
a `proxy_pass` written with variables."""

from __future__ import annotations

from dataclasses import dataclass
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
    location prefix of the normalized URI is replaced by it. A URL written with variables sends its
    URI part as it is (nginx: "the URI ... is passed to the server as is")."""
    if proxy_pass.url is not None:
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
