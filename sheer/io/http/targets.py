"""`proxy_pass http://$variable...`: where a request goes is decided per request, as nginx's
ngx_http_proxy_eval and ngx_http_upstream_init_request decide it. The rendered URL's host is
- an upstream block's name (when the URL has no port): that group, its balancer and counters;
- an address: that address;
- a name: resolved with the location's `resolver` (answers kept while they stand, one question
  in flight per name), every address a peer; no resolver is nginx's 502 "no resolver defined to
  resolve NAME", a failure its 502 "NAME could not be resolved (3: Host not found)".
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from sheer.config.model import Location, Upstream, UpstreamServer
from sheer.config.names import is_address
from sheer.config.values import is_unix
from sheer.core.balancers import Balancer, make_balancer
from sheer.core.http.uri import BadProxyUrl, parse_proxy_url
from sheer.core.resolve import Resolved
from sheer.core.resolve_wire import strerror
from sheer.io.context import WorkerContext
from sheer.io.counting import PeerColumns, peer_columns
from sheer.io.dns import NameLookups
from sheer.io.http.upstream_pool import UpstreamPool, pool_for

KEPT = 256          # balancers of resolved names and addresses kept per worker


@dataclass
class Target:
    upstream: Upstream
    balancer: Balancer
    columns: tuple[PeerColumns, ...]
    pool: UpstreamPool | None
    proxy_host: str                 # $proxy_host
    uri: str                        # the URL's URI part, sent as is ("": the client's request URI)


class TargetError(Exception):
    """The request cannot be proxied: the status it gets and nginx's log line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Targets:
    """One per worker: the upstream blocks by name, and balancers for what was resolved."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        http = ctx.config.http
        upstreams = http.upstreams if http else ()
        self.blocks = {u.name: u for u in upstreams if not u.implicit}
        # `proxy_pass http://HOST:PORT` elsewhere made an implicit upstream, which a URL of the same
        # host and port uses (ngx_http_upstream_init_request looks among every upstream)
        self.implicit: dict[str, Upstream] = {}
        for server in (http.servers if http else ()):
            for location in server.locations:
                proxy = location.proxy_pass
                if proxy is not None and proxy.upstream is not None and proxy.upstream.implicit:
                    self.implicit.setdefault(proxy.upstream.name.lower(), proxy.upstream)
        self.lookups = NameLookups(ctx.log.log)
        self.kept: OrderedDict[tuple[str, int], Resolved] = OrderedDict()

    async def choose(self, text: str, location: Location) -> Target:
        try:
            url = parse_proxy_url(text)
        except BadProxyUrl as exc:
            raise TargetError(500, str(exc)) from None
        block = (self.blocks.get(url.host) if url.no_port
                 else self.implicit.get(UpstreamServer(url.host, url.port).name.lower()) if self.implicit
                 else None)
        if block is not None:
            return Target(block, self.ctx.balancer_for(block), peer_columns(self.ctx.shared.layout, block),
                          pool_for(block), url.proxy_host, url.uri)
        if is_address(url.host) or is_unix(url.host):
            addresses: tuple[str, ...] = (url.host,)
        else:
            resolver = location.resolver
            if resolver is None:
                raise TargetError(502, f"no resolver defined to resolve {url.host}")
            resolution = await self.lookups.resolve(url.host, resolver)
            if not resolution.ok:
                raise TargetError(502, f"{url.host} could not be resolved "
                                       f"({resolution.code}: {strerror(resolution.code)})")
            addresses = resolution.addresses
        upstream, balancer = self.balancer(url.host, url.port, addresses)
        return Target(upstream, balancer, (), None, url.proxy_host, url.uri)

    def balancer(self, host: str, port: int, addresses: tuple[str, ...]) -> tuple[Upstream, Balancer]:
        """Round robin over the addresses, a fresh one per request as nginx's
        ngx_http_upstream_create_round_robin_peer makes it: a failure counts within the request only.
        Requests take turns at which address comes first (nginx's resolver rotates its answer)."""
        key = (host, port)
        found = self.kept.get(key)
        if found is None or found.addresses != addresses:
            written = UpstreamServer(host, port).name
            found = self.kept[key] = Resolved(addresses, written, port)
            while len(self.kept) > KEPT:
                self.kept.popitem(last=False)
        else:
            self.kept.move_to_end(key)
        upstream = found.next()
        return upstream, make_balancer(upstream)

