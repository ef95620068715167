"""Configuration: nginx syntax in, a frozen typed model out."""

from __future__ import annotations

from dataclasses import replace

from sheer.config import names, table
from sheer.config.build import Builder
from sheer.config.errors import ConfigError, Source
from sheer.config.maps import declared_variables
from sheer.config.model import Config
from sheer.config.names import Lookup, Names
from sheer.config.prefix import Prefixes
from sheer.config.template import DECLARED
from sheer.config.tree import COMMAND_LINE, Block, TreeReader

__all__ = ["Config", "ConfigError", "Lookup", "Source", "load"]


def load(path: str, *, prefix: str | None = None, global_directives: str | None = None,
         error_log: str | None = None, lookup: Lookup | None = None) -> Config:
    """Parse and check `path` (and its includes); raise ConfigError naming file:line on any problem.

    `prefix`, `global_directives` and `error_log` are nginx's `-p`, `-g` and `-e`: a relative `path`,
    `error_log` and the configuration's own paths are relative to the prefix (by default the current
    directory), `include` to the configuration's directory (sheer.config.prefix).

    Names (upstream servers, proxy_pass, listen, set_real_ip_from, resolver) are resolved through
    `lookup`, by default the system's resolver (sheer.config.names.system_lookup), as nginx does."""
    where = Prefixes.of(path, prefix)
    token = DECLARED.set(declared_variables(where.conf_file))
    try:
        return _load(where, global_directives, error_log, lookup)
    finally:
        DECLARED.reset(token)


def _load(where: Prefixes, global_directives: str | None, error_log: str | None,
          lookup: Lookup | None) -> Config:
    root = Block(table.MAIN, [], Source(where.conf_file, 0))
    reader = TreeReader(where)
    if global_directives:  # nginx reads -g before the file (ngx_conf_param, then ngx_conf_parse)
        reader.read_text(global_directives, root, label=COMMAND_LINE)
    reader.read_file(where.conf_file, root)
    step = Names(lookup or names.system_lookup)
    builder = Builder(root, where, step, error_log)
    config = builder.config()
    return replace(config, files=tuple(reader.files), notices=tuple(reader.notices + builder.notices))
