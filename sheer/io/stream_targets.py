"""Stream `proxy_pass $variable` (nginx's ngx_stream_proxy_eval): per session, the rendered value is an
upstream block's name, or an address:port (a balancer of one peer, kept while used). A name to resolve
is refused with nginx's words: sheer's stream sessions do not resolve at run time yet."""

from __future__ import annotations

from collections import OrderedDict

from sheer.config.model import Upstream, UpstreamServer
from sheer.config.names import is_address
from sheer.config.values import SUN_PATH_MAX
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
                return f"no resolver defined to resolve {host}", 502
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
