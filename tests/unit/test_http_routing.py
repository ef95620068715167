"""Virtual host and location selection and the proxied URI ($uri itself: test_http_request_parse.py)."""

from __future__ import annotations

import pytest

from sheer.config.model import HttpReturn, HttpServer, Listen, Location, ProxyPass, Upstream, UpstreamServer
from sheer.core.http.routing import Locations, VirtualHosts
from sheer.core.http.uri import parse_uri, upstream_uri

LISTEN = (Listen("127.0.0.1", 80),)


def server(*names: str, paths: tuple[str, ...] = ("/",)) -> HttpServer:
    return HttpServer(LISTEN, names or ("",),
                      tuple(Location(p, return_=HttpReturn(200, None)) for p in paths))


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
    parsed = parse_uri(raw.encode())
    assert parsed is not None
    assert upstream_uri(location, ProxyPass(UP, target), raw, *parsed) == expected
