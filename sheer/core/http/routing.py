"""Virtual host and location selection, as nginx does it for the subset sheer implements."""

from __future__ import annotations

import re

from sheer.config.model import HttpServer, Location


class Locations:
    """nginx's location search (ngx_http_core_find_location): an exact `=` match ends it; else the
    longest matching prefix, searched again among the locations inside it; then, unless that prefix
    is `^~`, the level's regexes in the order written (the first match wins, and its own inner locations
    are searched); else the prefix. Named (`@`) locations are never matched by URI. A URI that is a
    proxy_pass location's name less its final "/" gets nginx's auto redirect to it, unless a prefix as
    long as the URI matches (ngx_http_core_find_static_location's NGX_DONE)."""

    __slots__ = ("autos", "exact", "prefixes", "regexes")

    def __init__(self, locations: tuple[Location, ...]) -> None:
        self.exact = {loc.path: loc for loc in locations if loc.exact}
        self.autos = {loc.path[:-1]: loc for loc in locations if loc.proxy_pass is not None
                      and loc.path.endswith("/") and loc.modifier in ("", "^~", "=")}
        self.prefixes = sorted(((loc, Locations(loc.nested) if loc.nested else None)
                                for loc in locations if loc.modifier in ("", "^~") and not loc.exact),
                               key=lambda item: -len(item[0].path))
        self.regexes = [(loc, Locations(loc.nested) if loc.nested else None)
                        for loc in locations if loc.regex is not None]

    def match(self, uri: str) -> Location | None:
        return self.find(uri)[0]

    def search(self, uri: str) -> tuple[Location | None, bool]:
        """The location, and whether it is an auto redirect's (the request is answered 301 with its name)."""
        found, done = self.find(uri)
        return found, done is None

    def find(self, uri: str) -> tuple[Location | None, bool | None]:
        """The location, and whether the search ended at this level (exact or regex match; None: an auto
        redirect's location)."""
        exact = self.exact.get(uri)
        if exact is not None:
            return exact, True
        found: Location | None = None
        noregex = False
        for loc, inner in self.prefixes:
            if uri.startswith(loc.path):
                found, noregex = loc, loc.modifier == "^~"
                if inner is not None:
                    nested, done = inner.find(uri)
                    if done is not False:
                        return nested, done
                    found = nested or found
                break
        if self.autos:
            auto = self.autos.get(uri)
            if auto is not None and (found is None or len(found.path) < len(uri)):
                return auto, None
        if not noregex:
            for loc, inner in self.regexes:
                assert loc.regex is not None
                if loc.regex.search(uri):
                    return (inner.find(uri)[0] or loc) if inner is not None else loc, True
        return found, False


class VirtualHost:
    __slots__ = ("locations", "name", "server")

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        name = server.server_names[0] if server.server_names else ""
        self.name = name.removeprefix(".")     # $server_name of ".example.com"
        self.locations = Locations(server.location_tree or server.locations)


class VirtualHosts:
    """The servers sharing one listening address; the first is the default server (the runtime puts the
    `default_server` one first). A name is looked up as nginx does (ngx_http_find_virtual_server): the
    exact name, the longest `*.` wildcard, the longest `.*` wildcard, the first regex, the default."""

    __slots__ = ("by_name", "capturing", "default", "heads", "regexes", "tails")

    def __init__(self, servers: list[HttpServer]) -> None:
        if not servers:
            raise ValueError("an http listener needs at least one server")
        hosts = [VirtualHost(server) for server in servers]
        self.default = hosts[0]
        self.by_name: dict[str, VirtualHost] = {}
        self.heads: list[tuple[str, VirtualHost]] = []     # "*.example.com" -> ".example.com"
        self.tails: list[tuple[str, VirtualHost]] = []     # "www.example.*" -> "www.example."
        self.regexes: list[tuple[re.Pattern[str], VirtualHost]] = []
        for vhost in hosts:
            for name in vhost.server.server_names:
                name = name.lower()
                if name.startswith("~"):
                    continue
                if name.startswith(("*.", ".")):
                    suffix = name[1:]
                    self.heads.append((suffix, vhost))
                    if name.startswith("."):
                        self.by_name.setdefault(suffix[1:], vhost)
                elif name.endswith(".*"):
                    self.tails.append((name[:-1], vhost))
                else:
                    self.by_name.setdefault(name, vhost)
            self.regexes += [(regex, vhost) for regex in vhost.server.name_regexes]
        self.capturing = any(regex.groups for regex, _ in self.regexes)   # find() is wanted, not select()
        self.heads.sort(key=lambda item: -len(item[0]))
        self.tails.sort(key=lambda item: -len(item[0]))

    def select(self, host: str) -> VirtualHost:
        found = self.by_name.get(host)
        if found is not None:
            return found
        if not host:
            return self.default
        found = self._wildcard(host)
        if found is not None:
            return found
        for regex, vhost in self.regexes:
            if regex.search(host):
                return vhost
        return self.default

    def find(self, host: str) -> tuple[VirtualHost, re.Match[str] | None]:
        """`select`, and the match of the regex name that chose the server: its captures are the
        request's variables ($1, named ones), as nginx sets them (ngx_http_regex_exec)."""
        found = self.by_name.get(host)
        if found is None:
            found = self._wildcard(host) if host else self.default
        if found is not None:
            return found, None
        for regex, vhost in self.regexes:
            match = regex.search(host)
            if match is not None:
                return vhost, match
        return self.default, None

    def _wildcard(self, host: str) -> VirtualHost | None:
        for suffix, vhost in self.heads:
            if host.endswith(suffix):
                return vhost
        for prefix, vhost in self.tails:
            if host.startswith(prefix):
                return vhost
        return None
