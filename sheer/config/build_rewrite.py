"""Each level's rewrite script (sheer.config.script) from what the tree kept in the order written."""

from __future__ import annotations

from typing import Any

from sheer.config.errors import Source
from sheer.config.rewrite import condition, script_return
from sheer.config.scope import inherited
from sheer.config.script import If, Op, Script
from sheer.config.table import HTTP_LIF
from sheer.config.tree import Block


def script_of(block: Block, chain: list[Block]) -> Script | None:
    """The level's script; None when it has none of `rewrite`, `if`, `set`, `break` (a lone `return`
    is answered as before: sheer.config.build_http)."""
    entries: list[tuple[str, Any, Source]] = block.get("script", [])
    if all(name == "return" for name, _, _ in entries):
        return None
    return Script(_ops(entries), log=inherited(chain, "rewrite_log", False),
                  warn_uninitialized=inherited(chain, "uninitialized_variable_warn", True))


def _ops(entries: list[tuple[str, Any, Source]]) -> tuple[Op, ...]:
    ops: list[Op] = []
    configs = 0      # a location's `if` blocks, in the order written: their Location.if_configs
    for name, value, source in entries:
        if name == "return":
            ops.append(script_return(value, source))
        elif name == "if":
            assert isinstance(value, Block)
            config = -1
            if value.context == HTTP_LIF:
                config, configs = configs, configs + 1
            ops.append(If(condition(value.args, source), _ops(value.get("script", [])), source, config,
                          "proxy_pass" in value.settings))
        else:
            ops.append(value)
    return tuple(ops)
