"""Read nginx-syntax files with crossplane into a tree of blocks, checked against the directive table."""

from __future__ import annotations

import glob
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any

import crossplane  # type: ignore[import-untyped]

from sheer.config import (
    directives,
    lexfix,  # noqa: F401  (crossplane reads `${name} next` as nginx does)
    table,
)
from sheer.config.accepted import BUILT_IN, module_of
from sheer.config.errors import ConfigError, Source
from sheer.config.prefix import Prefixes
from sheer.config.table import Directive, NoticeLevel
from sheer.config.values import unescape

_CROSSPLANE_WHERE = re.compile(r" in (.+):(\d+)$")


@dataclass
class Block:
    """One context (main, http, a server, a location...) and what was set in it."""

    context: str
    args: list[str]
    source: Source
    settings: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    children: list[Block] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)


COMMAND_LINE = "command line"   # where nginx says -g's directives are
MAX_DEPTH = 64     # blocks within blocks; nginx's own contexts nest at most 5 deep (http server location if)


def _read(path: str) -> list[dict[str, Any]]:
    try:
        _check_terminated(path)
        result = crossplane.parse(path, single=True, check_ctx=False, check_args=False, comments=False)
    except OSError as exc:
        raise ConfigError(f'open() "{path}" failed ({exc.errno}: {exc.strerror})') from None
    if result["status"] != "ok":
        error = result["errors"][0]
        message = _CROSSPLANE_WHERE.sub("", error["error"])
        raise ConfigError(message, Source(path, error.get("line") or 0))
    parsed: list[dict[str, Any]] = result["config"][0]["parsed"]
    for directive in parsed:
        _stamp(directive, path)
    return parsed


def _check_terminated(path: str) -> None:
    """crossplane takes `proxy_pass a }` as `proxy_pass a;`; nginx refuses it: `unexpected "}"`.
    Also bounds the nesting (crossplane's parser recurses once per block)."""
    pending = False
    depth = 0
    try:
        tokens = list(crossplane.lex(path))
    except crossplane.errors.NgxParserBaseException:
        return  # crossplane.parse reports it, with the line
    for token, line, quoted in tokens:
        if not quoted and token.startswith("#"):
            continue  # a comment
        if not quoted and token in (";", "{", "}"):
            if token == "}" and pending:
                raise ConfigError('unexpected "}"', Source(path, line))
            depth += {"{": 1, "}": -1, ";": 0}[token]
            if depth > MAX_DEPTH:
                raise ConfigError(f"blocks nested more than {MAX_DEPTH} levels deep", Source(path, line))
            pending = False
        else:
            pending = True


def _stamp(directive: dict[str, Any], path: str) -> None:
    directive["file"] = path
    for child in directive.get("block", ()):
        _stamp(child, path)


def _block_context(name: str, parent: str) -> str:
    if name in ("upstream", "server", "match"):
        return f"{parent}.{name}"
    if name == "location":
        return table.HTTP_LOCATION
    if name == "limit_except":
        return table.HTTP_LMT
    if name == "if":
        return table.HTTP_LIF if parent == table.HTTP_LOCATION else table.HTTP_IF
    return name


class TreeReader:
    """Walks parsed directives into `Block`s; includes are expanded relative to the configuration's
    directory, as nginx does."""

    def __init__(self, where: Prefixes) -> None:
        self.where = where
        self._including: list[str] = []
        self.files: list[str] = []
        self.notices: list[tuple[NoticeLevel, str]] = []     # what -t says of what sheer does not do
        self._noted: set[tuple[str, str]] = set()
        self._not_loaded: list[tuple[str, Source]] = []      # load_module of a module sheer lacks

    def read_file(self, path: str, into: Block) -> None:
        self.files.append(path)
        self.walk(_read(path), into)

    def read_text(self, text: str, into: Block, label: str) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as handle:
            handle.write(text)
        try:
            parsed = _read(handle.name)
        finally:
            os.unlink(handle.name)
        for directive in parsed:
            _stamp(directive, label)
        self.walk(parsed, into)

    def walk(self, parsed: list[dict[str, Any]], block: Block) -> None:
        for directive in parsed:
            name: str = directive["directive"]
            args: list[str] = directive["args"]
            source = Source(directive["file"], directive["line"])
            if name == "include":
                self._include(args, source, block)
                continue
            if block.context == table.TYPES:
                self._type(directive, source, block)
                continue
            if block.context in (table.MAP, table.GEO, table.SPLIT):
                if "block" in directive:
                    raise ConfigError(f'directive "{name}" is not terminated by ";"', source)
                block.settings.setdefault("entries", []).append(      # the key unescaped as nginx's
                    (unescape(name), [unescape(arg) for arg in args], source))
                continue
            entry = self._lookup(name, block.context, source)
            has_block = "block" in directive
            if entry.block is not None and not has_block:
                raise ConfigError(f'directive "{name}" has no opening "{{"', source)
            if entry.block is None and has_block:
                raise ConfigError(f'directive "{name}" is not terminated by ";"', source)
            if entry.notice is not None:
                self._notice(entry, args, source)
            if entry.block is not None:
                directives.check_arity(entry, args, source)
                child = Block(_block_context(name, block.context), list(args), source)
                block.children.append(child)
                self.walk(directive["block"], child)
                if entry.script:      # the rewrite module's directives run in the order written
                    block.settings.setdefault("script", []).append((name, child, source))
                continue
            value = directives.convert(entry, args, source)
            if entry.script:
                block.settings.setdefault("script", []).append((name, value, source))
                if name != "return":
                    continue
            if name == "load_module" and module_of(value[0]) not in BUILT_IN:
                self._not_loaded.append((module_of(value[0]), source))
            if entry.multi:
                block.settings.setdefault(entry.key or name, []).append((value, source))
            elif name in block.settings:
                raise ConfigError(f'"{name}" directive is duplicate', source)
            else:
                block.settings[name] = value
            block.sources.setdefault(name, source)

    def _lookup(self, name: str, context: str, source: Source) -> Directive:
        try:
            return directives.lookup(name, context, source)
        except ConfigError as exc:
            if not exc.message.startswith("unknown directive") or not self._not_loaded:
                raise
            loaded = ", ".join(f"{module} (loaded at {where})" for module, where in self._not_loaded)
            raise ConfigError(f"{exc.message}: perhaps a directive of {loaded}, which sheer does not have",
                              source) from None

    def _notice(self, entry: Directive, args: list[str], source: Source) -> None:
        assert entry.notice is not None
        said = entry.notice(args)
        if said is None or (entry.name, said[1]) in self._noted:
            return   # each thing is said once, at its first line
        self._noted.add((entry.name, said[1]))
        self.notices.append((said[0], f'{source}: "{entry.name}": {said[1]}'))

    def _type(self, directive: dict[str, Any], source: Source, block: Block) -> None:
        """A line of `types { text/html html htm; }`: a MIME type and its extensions."""
        if "block" in directive:
            raise ConfigError(f'directive "{directive["directive"]}" is not terminated by ";"', source)
        block.settings.setdefault("types", []).append(
            (unescape(directive["directive"]), [unescape(arg) for arg in directive["args"]], source))

    def _include(self, args: list[str], source: Source, block: Block) -> None:
        if len(args) != 1:
            raise ConfigError('invalid number of arguments in "include" directive', source)
        pattern = self.where.conf_path(args[0])
        paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        for path in paths:
            if path in self._including:
                raise ConfigError(f'include of "{path}" loops back to itself', source)
            if not os.path.exists(path):
                raise ConfigError(f'open() "{path}" failed (2: No such file or directory)', source)
            self._including.append(path)
            try:
                self.read_file(path, block)
            finally:
                self._including.pop()
