"""Stream `proxy_pass $variable` (nginx's ngx_stream_proxy_eval): per session, the rendered value is an
upstream block's name, an address:port (a balancer of one peer, kept while used), or a name:port that the
server's `resolver` resolves (answers kept while they stand, one question in flight per name: the same
lookups as http's, sheer.io.dns), every address a peer of a round robin made for the session, as
nginx's ngx_stream_upstream_create_round_robin_peer makes it. No resolver is nginx's "no resolver
defined to resolve NAME", a failed lookup its "NAME could not be resolved (3: Host not found)"."""

from __future__ import annotations

from collections import OrderedDict

from sheer.config.model import Upstream, UpstreamServer
from sheer.config.names import is_address
from sheer.config.resolver import Resolver
from sheer.config.values import SUN_PATH_MAX
from sheer.core.balancers import Balancer, make_balancer
from sheer.core.resolve import Resolved
from sheer.core.resolve_wire import strerror
from sheer.core.tcp_commands import Chosen, Resolve
from sheer.io.context import WorkerContext
from sheer.io.dns import NameLookups

KEPT = 256          # balancers of addresses, and answers' rotations, kept per worker


class StreamTargets:
    def __init__(self, ctx: WorkerContext, resolver: Resolver | None = None) -> None:
        self.ctx = ctx
        self.resolver = resolver
        stream = ctx.config.stream
        self.blocks = {u.name: u for u in (stream.upstreams if stream else ()) if not u.implicit}
        self.kept: OrderedDict[tuple[str, int], Balancer] = OrderedDict()
        self.lookups: NameLookups | None = None
        self.resolved: OrderedDict[tuple[str, int], Resolved] = OrderedDict()

    def choose(self, value: str) -> Chosen | Resolve:
        """The balancer for `value`, nginx's error line and status when there is none (500: the value
        is not an address; 502: a name and no resolver), or `Resolve` for a name to resolve first."""
        block = self.blocks.get(value)
        if block is not None:
            return self.ctx.balancer_for(block)
        if value[:5].lower() == "unix:":       # a unix-domain socket: the rest is its path
            path = value[5:]
            if not path or len(path.encode()) + 1 > SUN_PATH_MAX:
                what = "no path" if not path else "too long path"
                return f'{what} in the unix domain socket in upstream "{value}"', 500
            host, port_number = "unix:" + path, 0
        else:
            host, sep, port = value.rpartition(":")
            host = host.strip("[]")
            if not sep or not port.isdigit() or not 0 < int(port) < 65536:
                return f'no port in upstream "{value}"', 500
            if not is_address(host):
                if self.resolver is None:
                    return f"no resolver defined to resolve {host}", 502
                return Resolve(value)
            port_number = int(port)
        key = (host, port_number)
        found = self.kept.get(key)
        if found is None:
            written = UpstreamServer(host, port_number).name
            found = make_balancer(Upstream(written, (UpstreamServer(host, port_number, text=written),),
                                           implicit=True))
            self.kept[key] = found
            while len(self.kept) > KEPT:
                self.kept.popitem(last=False)
        else:
            self.kept.move_to_end(key)
        return found

    async def resolve(self, value: str) -> Chosen:
        """`Resolve(value)`'s answer: a round robin over the name's addresses, fresh for the session
        (failures count within it only), sessions taking turns at which address comes first."""
        assert self.resolver is not None
        host, _, port = value.rpartition(":")
        if self.lookups is None:
            self.lookups = NameLookups(self.ctx.log.log)
        resolution = await self.lookups.resolve(host, self.resolver)
        if not resolution.ok:
            return f"{host} could not be resolved ({resolution.code}: {strerror(resolution.code)})", 502
        key = (host.lower(), int(port))
        found = self.resolved.get(key)
        if found is None or found.addresses != resolution.addresses:
            found = self.resolved[key] = Resolved(resolution.addresses, UpstreamServer(host, int(port)).name,
                                                  int(port))
            while len(self.resolved) > KEPT:
                self.resolved.popitem(last=False)
        else:
            self.resolved.move_to_end(key)
        return make_balancer(found.next())
