"""`proxy_bind`: the local address an upstream connection uses, rendered per client (sans-IO)."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from sheer.config.model import ProxyBind
from sheer.config.template import Var
from sheer.core.variables import VariableSource, render

# Shown wherever sheer suspects the transparent replies are not routed back to it.
PLUMBING_HINT = ("likely cause: the replies of a transparent upstream connection reach sheer only if the "
                 "proxy marks them and routes the mark locally; run `sheer net apply -c CONF`, and `sheer "
                 "doctor -c CONF` to see what is missing")


@dataclass(frozen=True, slots=True)
class BindTo:
    host: str
    port: int               # 0: any port (TCP uses IP_BIND_ADDRESS_NO_PORT)
    transparent: bool

    @property
    def family(self) -> int:
        return 6 if ":" in self.host else 4

    def __str__(self) -> str:
        host = f"[{self.host}]" if self.family == 6 else self.host
        return f"{host}:{self.port}" if self.port else self.host


class BindValueError(ValueError):
    """The rendered proxy_bind value is not an address (nginx: `invalid local address`)."""


def bind_to(bind: ProxyBind | None, variables: VariableSource) -> BindTo | None:
    """The address to bind for this client, or None (no proxy_bind, or it rendered empty)."""
    if bind is None:
        return None
    text = render(bind.address, variables)
    if not text:
        return None
    return _parse(text, bind.transparent)


def client_bind(bind: ProxyBind | None) -> bool | None:
    """`proxy_bind $remote_addr [transparent]`: its `transparent` (the client's host is then the address
    to bind, `bind_host` takes it without rendering); None for any other proxy_bind, or none."""
    if bind is None or len(bind.address.parts) != 1:
        return None
    part = bind.address.parts[0]
    return bind.transparent if isinstance(part, Var) and part.name == "remote_addr" else None


def bind_host(host: str, transparent: bool) -> BindTo | None:
    """bind_to of a proxy_bind that rendered to `host`."""
    return _parse(host, transparent) if host else None


@functools.lru_cache(maxsize=4096)
def _parse(text: str, transparent: bool) -> BindTo:
    """The canonical host and the port of a rendered value. Cached: one client's connections and
    requests render the same text, and parsing an address costs more than the rest of bind_to."""
    host, port = _split(text)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise BindValueError(f'invalid local address "{text}"') from None
    return BindTo(str(address), port, transparent)


def _split(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if port and (not port.isdigit() or int(port) > 65535):
        raise BindValueError(f'invalid port in local address "{text}"')
    return host, int(port or 0)
