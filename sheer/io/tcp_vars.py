"""Variables of a TCP stream session, rendered when asked: a session keeps its facts (the core session's
addresses, status and counters, its own socket) and nothing is formatted unless `return`, proxy_bind, a
hash key, a PROXY header or an access log asks for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from sheer.core.maps import lookup
from sheer.core.proxy_protocol import TLV_PREFIX, tlv_variable
from sheer.core.tcp import TcpSession
from sheer.core.variables import binary_address, render
from sheer.io.context import WorkerContext
from sheer.io.stream_vars import COMMON, host_of, port_of


class Counted(Protocol):
    @property
    def moved(self) -> int: ...


class Facts(Protocol):
    """What sheer.io.tcp_relay's connection holds for its variables."""

    core: TcpSession
    peer_address: Any            # the connection's own peer: $realip_remote_addr
    mapped: dict[str, str] | None    # the session's `map` values, once one is asked

    def variable(self, name: str) -> str: ...
    started: float               # wall clock at accept
    first_byte: float | None     # $upstream_first_byte_time (None: not timed, or nothing came)
    number: int                  # $connection

    @property
    def up(self) -> Counted: ...          # client -> upstream

    @property
    def down(self) -> Counted: ...        # upstream -> client

    @property
    def ctx(self) -> WorkerContext: ...

    @property
    def local(self) -> Any: ...


def variable(facts: Facts, name: str) -> str:
    getter = GETTERS.get(name)
    if getter is not None:
        return getter(facts)
    if name.startswith(TLV_PREFIX):
        return tlv_variable(facts.core.proxy, name)
    if facts.mapped is None and facts.core.shared.server.sets:
        facts.mapped = {}             # stream `set`, made when a variable is first asked (after PROXY)
        for set_name, value in facts.core.shared.server.sets:
            facts.mapped[set_name] = render(value, facts)
    if facts.mapped is not None and name in facts.mapped:
        return facts.mapped[name]     # `set`, or a map's value worked out already
    maps = facts.ctx.stream_maps
    if not maps:
        return ""
    if facts.mapped is None:
        facts.mapped = {}
    mapped = lookup(maps, name, facts, facts.mapped)     # a `map` of the stream block
    return mapped if mapped is not None else ""


def _earlier(c: Facts, none: str, value: str) -> str:
    """A per-try list, as nginx's u->state makes it: the tries before the last one failed to connect
    (the only failure a stream session tries the next peer on), so each says `none` for it."""
    earlier = c.core.upstream_addr.count(", ")
    return f"{none}, " * earlier + value if earlier else value


def _connect_time(c: Facts) -> str:
    t = c.core.connect_time
    return _earlier(c, "-", "-" if t is None else f"{t:.3f}")


def _proxy(c: Facts, end: str, part: Callable[[Any], str]) -> str:
    proxy = c.core.proxy
    return part(getattr(proxy, end)) if proxy is not None else ""


GETTERS: dict[str, Callable[[Facts], str]] = {
    "remote_addr": lambda c: host_of(c.core.client),
    "remote_port": lambda c: port_of(c.core.client),
    "binary_remote_addr": lambda c: binary_address(host_of(c.core.client)),
    "realip_remote_addr": lambda c: host_of(c.peer_address),
    "realip_remote_port": lambda c: port_of(c.peer_address),
    "proxy_protocol_addr": lambda c: _proxy(c, "source", host_of),
    "proxy_protocol_port": lambda c: _proxy(c, "source", port_of),
    "proxy_protocol_server_addr": lambda c: _proxy(c, "destination", host_of),
    "proxy_protocol_server_port": lambda c: _proxy(c, "destination", port_of),
    "server_addr": lambda c: host_of(c.local),
    "server_port": lambda c: port_of(c.local),
    "protocol": lambda c: "TCP",
    "status": lambda c: str(c.core.status),
    # bytes to and from the client; the upstream's are the same bytes the other way round
    "bytes_sent": lambda c: str(c.down.moved),
    "bytes_received": lambda c: str(c.up.moved),
    "upstream_bytes_sent": lambda c: _earlier(c, "0", str(c.up.moved)),
    "upstream_bytes_received": lambda c: _earlier(c, "0", str(c.down.moved)),
    "session_time": lambda c: f"{time.time() - c.started:.3f}",
    "upstream_addr": lambda c: c.core.upstream_addr,
    "upstream_session_time": lambda c: f"{time.time() - c.started:.3f}",
    "upstream_connect_time": _connect_time,
    "upstream_first_byte_time": lambda c: _earlier(c, "-", "-" if c.first_byte is None
                                                    else f"{c.first_byte:.3f}"),
    # `ssl_preread on` (sheer.core.tls_preread)
    "ssl_preread_server_name": lambda c: c.core.client_hello.server_name if c.core.client_hello else "",
    "ssl_preread_protocol": lambda c: c.core.client_hello.protocol if c.core.client_hello else "",
    "ssl_preread_alpn_protocols": lambda c: c.core.client_hello.alpn_protocols if c.core.client_hello else "",
}
GETTERS.update(COMMON)
