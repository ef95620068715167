"""Configuration: nginx syntax in, a frozen typed model out."""

from __future__ import annotations

import os
from dataclasses import replace

from sheer.config import directives
from sheer.config.build import Builder
from sheer.config.errors import ConfigError, Source
from sheer.config.model import Config
from sheer.config.tree import Block, TreeReader

__all__ = ["Config", "ConfigError", "Source", "load"]


def load(path: str, *, prefix: str | None = None, global_directives: str | None = None) -> Config:
    """Parse and check `path` (and its includes); raise ConfigError naming file:line on any problem."""
    path = os.path.abspath(path)
    conf_dir = os.path.dirname(path)
    root = Block(directives.MAIN, [], Source(path, 0))
    reader = TreeReader(conf_dir)
    reader.read_file(path, root)
    if global_directives:
        reader.read_text(global_directives, root, label="-g")
    config = Builder(root, path, os.path.abspath(prefix) if prefix else conf_dir).config()
    return replace(config, files=tuple(reader.files))
