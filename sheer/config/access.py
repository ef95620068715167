"""`allow` and `deny` (ngx_http_access_module, ngx_stream_access_module): rules read in the order
written, both directives in one list; a level with rules of its own replaces the outer ones. And
`limit_except METHOD ... { allow/deny }` (ngx_http_core_module): other rules for the other methods."""

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


# the methods nginx knows for limit_except (ngx_http_core_limit_except's table)
LIMIT_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "MKCOL", "COPY", "MOVE", "OPTIONS",
                           "PROPFIND", "PROPPATCH", "LOCK", "UNLOCK", "PATCH"})


@dataclass(frozen=True, slots=True)
class LimitExcept:
    methods: frozenset[bytes]           # the methods the location's own rules keep (GET brings HEAD)
    access: tuple[AccessRule, ...]      # for every other method


def limit_methods(args: list[str], source: Source) -> list[str]:
    for method in args:
        if method.upper() not in LIMIT_METHODS:
            raise ConfigError(f'invalid method "{method}"', source)
    return args


def limit_except(chain: list[Any], context: str) -> LimitExcept | None:
    """The innermost level's `limit_except` block (nginx merges it into nested locations), its rules
    inheriting the location's when it has none."""
    for at, block in enumerate(chain):
        found = [child for child in block.children if child.context == context]
        if len(found) > 1:
            raise ConfigError('"limit_except" directive is duplicate', found[1].source)
        if found:
            limit_methods(found[0].args, found[0].source)
            methods = {method.upper().encode() for method in found[0].args}
            if b"GET" in methods:
                methods.add(b"HEAD")
            return LimitExcept(frozenset(methods), access_rules([found[0], *chain[at:]]))
    return None
