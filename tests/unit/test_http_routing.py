"""Virtual host and location selection, URI normalization and the proxied URI."""

from __future__ import annotations

import pytest

from sheer.config.model import HttpReturn, HttpServer, Listen, Location, ProxyPass, Upstream, UpstreamServer
from sheer.core.http.routing import Locations, VirtualHosts, host_name
from sheer.core.http.uri import BadUri, normalize, split_uri, upstream_uri

LISTEN = (Listen("127.0.0.1", 80),)


def server(*names: str, paths: tuple[str, ...] = ("/",)) -> HttpServer:
    return HttpServer(LISTEN, names or ("",),
                      tuple(Location(p, return_=HttpReturn(200, None)) for p in paths))


def test_host_name_strips_port_case_and_trailing_dot() -> None:
    assert host_name("Example.COM:8080") == "example.com"
    assert host_name("www.example.com.") == "www.example.com"
    assert host_name("[::1]:80") == "[::1]"
    assert host_name("") == ""


def test_server_by_host_falls_back_to_the_first() -> None:
    first, named, wild = server(""), server("a.example", "b.example"), server("*.wild.example")
    hosts = VirtualHosts([first, named, wild])
    assert hosts.select("b.example").server is named
    assert hosts.select("x.wild.example").server is wild
    assert hosts.select("unknown").server is first
    assert hosts.select("").server is first
    assert hosts.select("a.example").name == "a.example"


def test_exact_location_wins_then_longest_prefix() -> None:
    root, api, api_v2 = Location("/"), Location("/api/"), Location("/api/v2/")
    exact = Location("/api/", exact=True)
    locations = Locations((root, api, api_v2, exact))
    assert locations.match("/api/") is exact
    assert locations.match("/api/v2/x") is api_v2
    assert locations.match("/api/v1") is api
    assert locations.match("/other") is root
    assert Locations((Location("/only/"),)).match("/") is None


def test_normalize_like_nginx_uri() -> None:
    assert normalize("/a/b") == "/a/b"
    assert normalize("/a//b/./c/../d") == "/a/b/d"
    assert normalize("/a/%41%20b") == "/a/A b"
    assert normalize("/a/..") == "/"
    with pytest.raises(BadUri):
        normalize("/../etc/passwd")
    with pytest.raises(BadUri):
        normalize("relative")
    assert split_uri("/p?x=1&y") == ("/p", "x=1&y")


UP = Upstream("group", (UpstreamServer("127.0.0.11", 80),))


@pytest.mark.parametrize(("location", "target", "raw", "expected"), [
    (Location("/"), None, "/a/b?x=1", "/a/b?x=1"),                 # no URI part: passed unchanged
    (Location("/app/"), None, "/app//x?q", "/app//x?q"),
    (Location("/app/"), "/v2/", "/app/a/b?x=1", "/v2/a/b?x=1"),    # the prefix is replaced
    (Location("/app/"), "/", "/app/a%20b", "/a%20b"),
    (Location("/app"), "/x", "/app/../app/y", "/x/y"),
    (Location("/e", exact=True), "/other", "/e?z", "/other?z"),
])
def test_upstream_uri(location: Location, target: str | None, raw: str, expected: str) -> None:
    path, args = split_uri(raw)
    assert upstream_uri(location, ProxyPass(UP, target), raw, normalize(path), args) == expected
