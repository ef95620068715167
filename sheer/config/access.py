"""`allow` and `deny` (ngx_http_access_module, ngx_stream_access_module): rules read in the order
written, both directives in one list; a level with rules of its own replaces the outer ones (a
`limit_except` block's for the methods it does not name: sheer.config.limit_except)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sheer.config.errors import ConfigError, Source

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AccessRule:
    allow: bool
    network: Network | None         # None: `all`, or with `unix` the clients of unix-domain listeners
    source: Source | None = None
    unix: bool = False              # `allow unix:` / `deny unix:` (nginx's AF_UNIX rule)


def rule(allow: bool) -> Callable[[list[str], Source], AccessRule]:
    """The converter of `allow` (True) or `deny`: an address, a CIDR block, or `all`."""
    def convert(args: list[str], source: Source) -> AccessRule:
        text = args[0]
        if text == "all":
            return AccessRule(allow, None, source)
        if text == "unix:":
            return AccessRule(allow, None, source, unix=True)
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ConfigError(f'invalid parameter "{text}"', source) from None
        return AccessRule(allow, network, source)
    return convert


def access_rules(chain: list[Any]) -> tuple[AccessRule, ...]:
    """The innermost level's rules (nginx's merge: the child's list, else the parent's)."""
    for block in chain:
        rules = block.settings.get("access")
        if rules:
            return tuple(value for value, _ in rules)
    return ()
