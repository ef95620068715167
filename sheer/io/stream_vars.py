"""Variables of a stream session (TCP connection or UDP session), for `return` and access logs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from sheer import NGINX_VERSION
from sheer.core.maps import lookup
from sheer.core.proxy_protocol import TLV_PREFIX, ProxyHeader, tlv_variable
from sheer.core.tls_vars import VARIABLES as TLS_VARIABLES
from sheer.core.tls_vars import TlsInfo
from sheer.core.variables import binary_address, time_iso8601, time_local
from sheer.io.context import WorkerContext


def host_of(address: Any) -> str:
    return address[0] if address else ""


def port_of(address: Any) -> str:
    """"" where there is none: no address, or a unix-domain socket's (port None)."""
    return str(address[1]) if address and address[1] is not None else ""


class StreamVariables:
    __slots__ = (
        "_local",
        "_mapped",
        "bytes_received",
        "bytes_sent",
        "client",
        "ctx",
        "number",
        "peer",
        "protocol",
        "proxy",
        "started",
        "status",
        "tls",
        "upstream_addr",
        "upstream_bytes_received",
        "upstream_bytes_sent",
        "upstream_connect_time",
    )

    def __init__(self, ctx: WorkerContext, protocol: str, client: Any, local: Any, started: float) -> None:
        self.ctx = ctx
        self.number = ctx.connection_number()        # $connection
        self.protocol = protocol
        self.client = client          # $remote_addr:$remote_port, after realip
        self.peer = client            # the connection's own peer: $realip_remote_addr
        self.proxy: ProxyHeader | None = None
        self._local = local           # the address, or a function giving it (asked once, if ever needed)
        self.started = started
        self.status = 200
        self.bytes_sent = self.bytes_received = 0
        self.upstream_bytes_sent = self.upstream_bytes_received = 0
        self.upstream_addr: list[str] = []
        self.upstream_connect_time: float | None = None
        self._mapped: dict[str, str] = {}
        self.tls: TlsInfo | None = None              # `listen ... ssl`: what the handshake settled

    @property
    def local(self) -> Any:
        """$server_addr:$server_port. A TCP session asks getsockname() only if a variable, a PROXY
        header or the access log needs it (nginx does the same for wildcard listeners)."""
        local = self._local
        if callable(local):
            try:
                local = local()
            except OSError:
                local = None
            self._local = local
        return local

    @property
    def remote_addr(self) -> str:
        return host_of(self.client)

    def variable(self, name: str) -> str:
        getter = _GETTERS.get(name)
        if getter is not None:
            return getter(self)
        if name in self._mapped:
            return self._mapped[name]        # `set`, or a map's value worked out already
        if name.startswith(TLV_PREFIX):
            return tlv_variable(self.proxy, name)
        mapped = lookup(self.ctx.stream_maps, name, self, self._mapped) if self.ctx.stream_maps else None
        return mapped if mapped is not None else ""

    def set_variable(self, name: str, value: str) -> None:
        self._mapped[name] = value           # `set $name value`: over a map's of that name


_GETTERS: dict[str, Callable[[StreamVariables], str]] = {
    "remote_addr": lambda v: host_of(v.client),
    "remote_port": lambda v: port_of(v.client),
    "binary_remote_addr": lambda v: binary_address(host_of(v.client)),
    "realip_remote_addr": lambda v: host_of(v.peer),
    "realip_remote_port": lambda v: port_of(v.peer),
    "proxy_protocol_addr": lambda v: host_of(v.proxy.source) if v.proxy else "",
    "proxy_protocol_port": lambda v: port_of(v.proxy.source) if v.proxy else "",
    "proxy_protocol_server_addr": lambda v: host_of(v.proxy.destination) if v.proxy else "",
    "proxy_protocol_server_port": lambda v: port_of(v.proxy.destination) if v.proxy else "",
    "server_addr": lambda v: host_of(v.local),
    "server_port": lambda v: port_of(v.local),
    "protocol": lambda v: v.protocol,
    "status": lambda v: str(v.status),
    "bytes_sent": lambda v: str(v.bytes_sent),
    "bytes_received": lambda v: str(v.bytes_received),
    "session_time": lambda v: f"{time.time() - v.started:.3f}",
    "upstream_addr": lambda v: ", ".join(v.upstream_addr),
    "upstream_bytes_sent": lambda v: str(v.upstream_bytes_sent),
    "upstream_bytes_received": lambda v: str(v.upstream_bytes_received),
    "upstream_session_time": lambda v: f"{time.time() - v.started:.3f}",
    "upstream_connect_time": lambda v: ("-" if v.upstream_connect_time is None
                                        else f"{v.upstream_connect_time:.3f}"),
    "upstream_first_byte_time": lambda v: "-",     # timed in plain TCP sessions only (sheer.io.tcp_relay)
}


class _OfWorker(Protocol):
    @property
    def ctx(self) -> WorkerContext: ...

    @property
    def number(self) -> int: ...


# The same in every stream session, UDP or TCP (sheer.io.tcp_vars): the worker's and the clock's.
COMMON: dict[str, Callable[[_OfWorker], str]] = {
    "hostname": lambda v: v.ctx.hostname,
    "pid": lambda v: str(v.ctx.pid),
    "time_local": lambda v: time_local(time.time()),
    "time_iso8601": lambda v: time_iso8601(time.time()),
    "msec": lambda v: f"{time.time():.3f}",
    "nginx_version": lambda v: NGINX_VERSION,
    "connection": lambda v: str(v.number),
}
_GETTERS.update(COMMON)


def _tls(get: Callable[[TlsInfo], str]) -> Callable[[StreamVariables], str]:
    return lambda v: "" if v.tls is None else get(v.tls)


# TLS (sheer.io.stream_tls): a StreamVariables' own, the $ssl_* of sheer.core.tls_vars
_GETTERS.update({name: _tls(get) for name, get in TLS_VARIABLES.items()})
