"""`server_name` as nginx reads it (ngx_http_core_server_name): exact names, wildcards with `*` as their
first or last label (`*.example.com`, `www.example.*`), `.example.com` (the name and every subdomain),
and regexes (`~^www\\d+\\.example\\.net$`, caseless as nginx compiles them), compiled once here."""

from __future__ import annotations

import re

from sheer.config.errors import ConfigError, Source
from sheer.config.regex import compile_regex


def server_name_regexes(names: tuple[str, ...], source: Source | None) -> tuple[re.Pattern[str], ...]:
    """The regexes among `names`, compiled; the other names checked as nginx checks them."""
    regexes: list[re.Pattern[str]] = []
    for name in names:
        if name.startswith("~"):
            regexes.append(compile_regex(name[1:], source, caseless=True))
            continue
        star = name.find("*")
        if star >= 0 and not ((name.startswith("*.") and "*" not in name[1:])
                              or (name.endswith(".*") and star == len(name) - 1)):
            raise ConfigError(f'invalid server name or wildcard "{name}"', source)
    return tuple(regexes)
