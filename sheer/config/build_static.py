"""`Static` for a location (or a server) from its chain of blocks: root and alias inherited together,
the innermost level's index, try_files and types, the other settings inherited as nginx merges them."""

from __future__ import annotations

import re
from typing import Any

from sheer.config.errors import ConfigError, Source
from sheer.config.locations import location_args
from sheer.config.prefix import full_name
from sheer.config.static import DEFAULT_TYPES, REGEX_ALIAS, Expires, Static, TryFiles, path_template
from sheer.config.table import TYPES
from sheer.config.template import Template
from sheer.config.tree import Block


def _types(chain: list[Block]) -> tuple[tuple[str, str], ...]:
    """The innermost level with `types` blocks: its lines (several blocks of one level add up)."""
    for block in chain:
        lines = [line for child in block.children if child.context == TYPES
                 for line in child.get("types", [])]
        if any(child.context == TYPES for child in block.children):
            found: dict[str, str] = {}
            for mime, extensions, _source in lines:
                for extension in extensions:
                    found[extension.lower()] = mime
            return tuple(found.items())
    return tuple(DEFAULT_TYPES.items())


def static_of(chain: list[Block], prefix: str, modifier: str, path: str,
              regex: re.Pattern[str] | None) -> Static:
    """What the innermost level of `chain` serves files with. `root` and `alias` are inherited together
    (an inner location keeps the outer one's alias length, as nginx's clcf->alias); `modifier` and
    `path` are the location's own ("" and "" for a server)."""
    root_text = "html"
    alias = 0
    for depth, block in enumerate(chain):
        if "root" in block.settings and "alias" in block.settings:
            first, second = sorted(("root", "alias"), key=lambda name: block.sources[name].line)
            raise ConfigError(f'"{second}" directive is duplicate, "{first}" directive was specified earlier',
                              block.sources[second])
        if "alias" in block.settings:
            root_text = block.settings["alias"]
            if depth == 0 and modifier == "@":
                raise ConfigError('the "alias" directive cannot be used inside the named location',
                                  block.sources["alias"])
            if depth == 0 and modifier in ("~", "~*"):
                alias = REGEX_ALIAS
            else:
                owner = _location_path(chain, depth, path)
                alias = len(owner)
            break
        if "root" in block.settings:
            root_text = block.settings["root"]
            if root_text.endswith("/") and len(root_text) > 1:
                root_text = root_text[:-1]
            break
    source = chain[0].source
    if not root_text.startswith("$"):
        root_text = full_name(prefix, root_text)
    root = path_template(root_text, source)
    index_args = _inherited(chain, "index", ["index.html"])
    try_args = chain[0].get("try_files")
    expires = expires_of(chain)
    uses_captures = _captures(root)
    index = tuple(path_template(name, source) for name in index_args)
    tried = _try(try_args, chain[0].sources.get("try_files", source)) if try_args else None
    tried_templates = [] if tried is None else [name for name, _ in tried.names] + \
        ([tried.fallback] if tried.fallback is not None else [])
    return Static(
        root=root,
        alias=alias,
        index=index,
        try_files=tried,
        types=_types(chain),
        default_type=_inherited(chain, "default_type", "text/plain"),
        log_not_found=_inherited(chain, "log_not_found", True),
        etag=_inherited(chain, "etag", True),
        if_modified_since=_inherited(chain, "if_modified_since", "exact"),
        max_ranges=_inherited(chain, "max_ranges", None),
        expires=expires,
        disable_symlinks=_inherited(chain, "disable_symlinks", False),
        regex=regex if uses_captures or any(_captures(t) for t in (*index, *tried_templates)) else None,
        prefix=prefix,
    )


def expires_of(chain: list[Block]) -> Expires | None:
    """The innermost `expires`; None when it is `off` (or there is none)."""
    expires: Expires | None = _inherited(chain, "expires", None)
    if expires is None or (expires.value is None and expires.mode == "off"):
        return None
    return expires


def _captures(template: Template) -> bool:
    return any(part.name.isdigit() for part in template.parts if not isinstance(part, str))


def _location_path(chain: list[Block], depth: int, path: str) -> str:
    """The path of the location at `depth` of the chain (0 is the innermost, whose path is given)."""
    if depth == 0:
        return path
    block = chain[depth]
    return location_args(block.args, block.source)[1] if block.args else ""


def _inherited(chain: list[Block], key: str, default: Any) -> Any:
    for block in chain:
        if key in block.settings:
            return block.settings[key]
    return default


def _try(args: list[str], source: Source) -> TryFiles:
    names: list[tuple[Template, bool]] = []
    for name in args[:-1]:
        test_dir = name.endswith("/") and len(name) > 0
        names.append((path_template(name[:-1] if test_dir else name, source), test_dir))
    last = args[-1]
    if last.startswith("="):
        return TryFiles(tuple(names), None, int(last[1:]))
    return TryFiles(tuple(names), path_template(last, source))
