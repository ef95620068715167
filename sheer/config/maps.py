"""`map STRING $variable { ... }` (ngx_http_map_module, ngx_stream_map_module), read into a model Map.

Inside the block: `default VALUE;`, `hostnames;`, `volatile;`, `include FILE;`, and `KEY VALUE;` lines
where KEY is a string (matched caseless, as nginx lowercases both sides), with `hostnames` a wildcard
(`*.example.com`, `www.example.*`, `.example.com`), or `~regex` / `~*regex` (tried in the order
written; their captures, `$1` or named, may be used in VALUE). `\\default` is the key "default".
"""

from __future__ import annotations

import re
from typing import Any

import crossplane  # type: ignore[import-untyped]

from sheer.config.errors import ConfigError, Source
from sheer.config.model import Map
from sheer.config.regex import compile_regex
from sheer.config.template import Template, compile_template
from sheer.config.tree import Block

_CAPTURE = re.compile(r"\$\{?([0-9]|[A-Za-z_]\w*)\}?")


_NAMED_GROUP = re.compile(r"\(\?(?:<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)'|P<([A-Za-z_]\w*)>)")


def declared_variables(conf_file: str) -> tuple[frozenset[str], frozenset[str]]:
    """The variables `map` makes, by module ("http", "stream"), read ahead from the whole configuration
    (includes too): nginx lets a variable be used before its map. What does not parse is left to the
    reading that follows, which says where."""
    try:
        parsed = crossplane.parse(conf_file, comments=False, check_ctx=False, check_args=False)
    except Exception:  # noqa: BLE001 - the real reading reports it
        return frozenset(), frozenset()
    configs = parsed.get("config", [])
    found: dict[str, set[str]] = {"http": set(), "stream": set()}

    including: list[int] = [0]      # an include loop is the reading's error to say, not this walk's

    def walk(directives: list[dict[str, Any]], module: str) -> None:
        for directive in directives:
            name, args = directive.get("directive"), directive.get("args", [])
            if name in ("http", "stream"):
                walk(directive.get("block", []), name)
            elif name in ("map", "geo", "split_clients") and module and args and args[-1].startswith("$"):
                found[module].add(args[-1][1:])
            elif name == "set" and module and len(args) == 2 and args[0].startswith("$"):
                found[module].add(args[0][1:])      # the rewrite module's (and stream's) user variables
                walk(directive.get("block", []), module)
            elif name in ("rewrite", "if", "location", "server_name") and module:
                # a regex's named captures are variables (`(?<name>...)`)
                found[module].update(m.group(1) or m.group(2) or m.group(3)
                                     for arg in args for m in _NAMED_GROUP.finditer(arg))
                walk(directive.get("block", []), module)
            elif name == "include":
                for index in directive.get("includes", []):
                    if 0 <= index < len(configs) and index not in including:
                        including.append(index)
                        walk(configs[index].get("parsed", []), module)
                        including.pop()
            elif "block" in directive:
                walk(directive["block"], module)

    if configs:
        walk(configs[0].get("parsed", []), "")
    return frozenset(found["http"]), frozenset(found["stream"])


def build_map(block: Block, known: frozenset[str], prefixes: tuple[str, ...]) -> Map:
    string, variable = block.args
    if not variable.startswith("$") or len(variable) < 2:
        raise ConfigError(f'invalid variable name "{variable}"', block.source)
    entries: list[tuple[str, list[str], Source]] = block.get("entries", [])
    hostnames = any(key == "hostnames" and not args for key, args, _ in entries)
    volatile = any(key == "volatile" and not args for key, args, _ in entries)
    exact: dict[str, Template] = {}
    heads: list[tuple[str, Template]] = []
    tails: list[tuple[str, Template]] = []
    regexes: list[tuple[re.Pattern[str], Template]] = []
    default: Template | None = None
    seen: set[str] = set()
    for key, args, source in entries:
        if not args and key in ("hostnames", "volatile"):
            continue
        if len(args) != 1:
            raise ConfigError("invalid number of the map parameters", source)
        if key.startswith("~"):
            caseless = key.startswith("~*")
            regex = compile_regex(key[2:] if caseless else key[1:], source, caseless=caseless)
            groups = {str(n) for n in range(10)} | set(regex.groupindex)
            regexes.append((regex, compile_template(args[0], source, known | groups, prefixes)))
            continue
        value = compile_template(args[0], source, known, prefixes)
        if key == "default":
            if default is not None:
                raise ConfigError("duplicate default map parameter", source)
            default = value
            continue
        key = key.removeprefix("\\").lower()
        if key in seen:
            raise ConfigError(f'conflicting parameter "{key}"', source)
        seen.add(key)
        if hostnames and key.startswith(("*.", ".")):
            heads.append((key[1:], value))
            if key.startswith("."):
                exact.setdefault(key[1:], value)
        elif hostnames and key.endswith(".*"):
            tails.append((key[:-1], value))
        else:
            exact[key] = value
    heads.sort(key=lambda item: -len(item[0]))
    tails.sort(key=lambda item: -len(item[0]))
    return Map(variable[1:], compile_template(string, block.source, known, prefixes), tuple(exact.items()),
               tuple(heads), tuple(tails), tuple(regexes), default, hostnames, volatile, block.source)


def maps_of(block: Block, known: frozenset[str], prefixes: tuple[str, ...]) -> tuple[Map, ...]:
    """The maps of an http or stream block; a variable made twice is nginx's error."""
    found: dict[str, Map] = {}
    for child in block.children:
        if child.context != "map":
            continue
        made = build_map(child, known, prefixes)
        if made.variable in found or made.variable in known:
            raise ConfigError(f'the duplicate "{made.variable}" variable', child.source)
        found[made.variable] = made
    return tuple(found.values())
