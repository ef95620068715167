"""Stream `proxy_pass $variable` (nginx's ngx_stream_proxy_eval): per session, the rendered value is an
upstream block's name, or an address:port (a balancer of one peer, kept while used). A name to resolve
is refused with nginx's words: sheer's stream sessions do not resolve at run time yet."""

from __future__ import annotations

from collections import OrderedDict

from sheer.config.model import Upstream, UpstreamServer
from sheer.config.names import is_address
from sheer.core.balancers import Balancer, make_balancer
from sheer.io.context import WorkerContext

KEPT = 256          # balancers of addresses kept per worker


class StreamTargets:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        stream = ctx.config.stream
        self.blocks = {u.name: u for u in (stream.upstreams if stream else ()) if not u.implicit}
        self.kept: OrderedDict[tuple[str, int], Balancer] = OrderedDict()

    def choose(self, value: str) -> Balancer | tuple[str, int]:
        """The balancer for `value`, or nginx's error line and status when there is none (500: the value
        is not an address; 502: a name to resolve)."""
        block = self.blocks.get(value)
        if block is not None:
            return self.ctx.balancer_for(block)
        host, sep, port = value.rpartition(":")
        host = host.strip("[]")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            return f'no port in upstream "{value}"', 500
        if not is_address(host):
            return f"no resolver defined to resolve {host}", 502
        key = (host, int(port))
        found = self.kept.get(key)
        if found is None:
            written = UpstreamServer(host, int(port)).name
            found = make_balancer(Upstream(written, (UpstreamServer(host, int(port), text=written),),
                                           implicit=True))
            self.kept[key] = found
            while len(self.kept) > KEPT:
                self.kept.popitem(last=False)
        else:
            self.kept.move_to_end(key)
        return found
