"""Virtual host and location selection, as nginx does it for the subset sheer implements."""

from __future__ import annotations

from sheer.config.model import HttpServer, Location


class Locations:
    """`=` exact locations first, then the longest matching prefix."""

    __slots__ = ("exact", "prefixes")

    def __init__(self, locations: tuple[Location, ...]) -> None:
        self.exact = {loc.path: loc for loc in locations if loc.exact}
        self.prefixes = sorted((loc for loc in locations if not loc.exact), key=lambda loc: -len(loc.path))

    def match(self, uri: str) -> Location | None:
        found = self.exact.get(uri)
        if found is not None:
            return found
        for loc in self.prefixes:
            if uri.startswith(loc.path):
                return loc
        return None


class VirtualHost:
    __slots__ = ("locations", "name", "server")

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.name = server.server_names[0] if server.server_names else ""
        self.locations = Locations(server.locations)


class VirtualHosts:
    """The servers sharing one listening address; the first is the default server."""

    __slots__ = ("by_name", "default", "wildcards")

    def __init__(self, servers: list[HttpServer]) -> None:
        if not servers:
            raise ValueError("an http listener needs at least one server")
        hosts = [VirtualHost(server) for server in servers]
        self.default = hosts[0]
        self.by_name: dict[str, VirtualHost] = {}
        # `*.example.com` and `.example.com` suffixes, longest first, as nginx prefers.
        self.wildcards: list[tuple[str, VirtualHost]] = []
        for vhost in hosts:
            for name in vhost.server.server_names:
                name = name.lower()
                if not name:
                    continue
                if name.startswith(("*.", ".")):
                    suffix = name[1:]
                    self.wildcards.append((suffix, vhost))
                    if name.startswith("."):
                        self.by_name.setdefault(suffix[1:], vhost)
                else:
                    self.by_name.setdefault(name, vhost)
        self.wildcards.sort(key=lambda item: -len(item[0]))

    def select(self, host: str) -> VirtualHost:
        if host:
            found = self.by_name.get(host)
            if found is not None:
                return found
            for suffix, vhost in self.wildcards:
                if host.endswith(suffix):
                    return vhost
        return self.default
