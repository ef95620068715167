"""`split_clients STRING $variable { ... }` (ngx_http_split_clients_module, ngx_stream_split_clients_module),
read into a `Split`: `PERCENT% VALUE;` lines (up to two decimals, nginx's ngx_atofp) and at most one
`* VALUE;` for the rest; more than 100% in total is nginx's error."""

from __future__ import annotations

import re

from sheer.config.computed import Split
from sheer.config.errors import ConfigError, Source
from sheer.config.template import compile_template
from sheer.config.tree import Block

_PERCENT = re.compile(r"(\d*)(?:\.(\d{0,2}))?")


def build_split(block: Block, known: frozenset[str], prefixes: tuple[str, ...]) -> Split:
    string, variable = block.args
    if not variable.startswith("$") or len(variable) < 2:
        raise ConfigError(f'invalid variable name "{variable}"', block.source)
    entries: list[tuple[str, list[str], Source]] = block.get("entries", [])
    parts: list[tuple[int, str]] = []
    total = last = 0
    for key, rest, source in entries:
        if len(rest) != 1:
            raise ConfigError("invalid number of the split_clients parameters", source)
        if key == "*":
            total = 10000
            parts.append((0, rest[0]))
            continue
        hundredths = _hundredths(key)
        if hundredths is None:
            raise ConfigError(f'invalid percent value "{key}"', source)
        total += hundredths
        if total > 10000:
            raise ConfigError("percent total is greater than 100%", source)
        last += hundredths * 0xFFFFFFFF // 10000
        parts.append((last, rest[0]))
    return Split(variable[1:], compile_template(string, block.source, known, prefixes), tuple(parts),
                 block.source)


def splits_of(block: Block, known: frozenset[str], prefixes: tuple[str, ...]) -> tuple[Split, ...]:
    return tuple(build_split(child, known, prefixes)
                 for child in block.children if child.context == "split_clients")


def _hundredths(text: str) -> int | None:
    """`51.2%` as 5120 (nginx's ngx_atofp with two decimals); None if it is no percentage or is 0."""
    if not text.endswith("%"):
        return None
    match = _PERCENT.fullmatch(text[:-1])
    if match is None or not (match.group(1) or match.group(2)):
        return None
    whole, fraction = match.group(1) or "0", (match.group(2) or "").ljust(2, "0")
    value = int(whole) * 100 + int(fraction)
    return value or None
