"""Configuration: nginx syntax in, a frozen typed model out."""

from __future__ import annotations

import os
from dataclasses import replace

from sheer.config import directives, names
from sheer.config.build import Builder
from sheer.config.errors import ConfigError, Source
from sheer.config.model import Config
from sheer.config.names import Lookup, Names
from sheer.config.tree import Block, TreeReader

__all__ = ["Config", "ConfigError", "Lookup", "Source", "load"]


def load(path: str, *, prefix: str | None = None, global_directives: str | None = None,
         lookup: Lookup | None = None) -> Config:
    """Parse and check `path` (and its includes); raise ConfigError naming file:line on any problem.

    Names (upstream servers, proxy_pass, listen, set_real_ip_from, resolver) are resolved through
    `lookup`, by default the system's resolver (sheer.config.names.system_lookup), as nginx does."""
    path = os.path.abspath(path)
    conf_dir = os.path.dirname(path)
    root = Block(directives.MAIN, [], Source(path, 0))
    reader = TreeReader(conf_dir)
    reader.read_file(path, root)
    if global_directives:
        reader.read_text(global_directives, root, label="-g")
    step = Names(lookup or names.system_lookup)
    config = Builder(root, path, os.path.abspath(prefix) if prefix else conf_dir, step).config()
    return replace(config, files=tuple(reader.files))
