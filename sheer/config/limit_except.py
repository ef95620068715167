"""`limit_except METHOD ... { }` (ngx_http_core_limit_except): the methods a location takes as it is; a
request with any other method is served by the block's nameless configuration (allow/deny, proxy_pass,
access_log written there, the rest the location's)."""

from __future__ import annotations

from sheer.config.errors import ConfigError
from sheer.config.table import HTTP_LMT
from sheer.config.tree import Block

# nginx's ngx_methods_names
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "MKCOL", "COPY", "MOVE", "OPTIONS", "PROPFIND",
                     "PROPPATCH", "LOCK", "UNLOCK", "PATCH"})


def limit_block(location: Block) -> Block | None:
    found = [child for child in location.children if child.context == HTTP_LMT]
    if len(found) > 1:
        raise ConfigError('"limit_except" directive is duplicate', found[1].source)
    return found[0] if found else None


def allowed_methods(block: Block) -> frozenset[bytes]:
    """The methods named (any case, as nginx), GET bringing HEAD."""
    methods = set()
    for word in block.args:
        if word.upper() not in METHODS:
            raise ConfigError(f'invalid method "{word}"', block.source)
        methods.add(word.upper())
    if "GET" in methods:
        methods.add("HEAD")
    return frozenset(method.encode() for method in methods)
