"""`Gzip` for a location (or a server) from its chain of blocks, merged as nginx merges the gzip filter's
and the core module's gzip settings."""

from __future__ import annotations

import re

from sheer.config.gzip import ANY_TYPE, Gzip
from sheer.config.scope import inherited
from sheer.config.tree import Block


def gzip_of(chain: list[Block]) -> Gzip | None:
    """The innermost `gzip` of `chain` (a location's blocks, innermost first) and the settings it goes
    with, merged as nginx merges them; None when gzip is off there."""
    if not inherited(chain, "gzip", False):
        return None
    types: set[str] = {"text/html"}          # ngx_http_types_slot adds text/html to every list
    for values, _source in inherited(chain, "gzip_types", []):
        types.update(values)
    disable = [value for values, _source in inherited(chain, "gzip_disable", []) for value in values]
    return Gzip(
        types=frozenset({ANY_TYPE}) if ANY_TYPE in types else frozenset(types),
        min_length=inherited(chain, "gzip_min_length", 20),
        comp_level=inherited(chain, "gzip_comp_level", 1),
        proxied=inherited(chain, "gzip_proxied", frozenset({"off"})),
        vary=inherited(chain, "gzip_vary", False),
        http_version=11 if inherited(chain, "gzip_http_version", "1.1") == "1.1" else 10,
        disable_msie6="msie6" in disable,
        disable=tuple(value for value in disable if isinstance(value, re.Pattern)),
    )

