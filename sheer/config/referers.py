"""`valid_referers none | blocked | server_names | HOST[/URI] | ~REGEX ...` (ngx_http_referer_module),
read into `Referers` for `$invalid_referer` (sheer.core.http.referer). Hosts are exact names or
wildcards (`*.example.com`, `.example.com` for the name and its subdomains, `www.example.*`), caseless,
each with an optional URI prefix; `~REGEX` is matched caselessly against the referer after its scheme.
Every `valid_referers` line of a level adds to the others; a level without any inherits its parent's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sheer.config.errors import ConfigError, Source
from sheer.config.regex import compile_regex

Uri = str | None        # the URI prefix a host's referers must start with (None: any)


@dataclass(frozen=True, slots=True)
class Referers:
    none: bool = False                  # no Referer at all is valid
    blocked: bool = False               # a Referer without http:// or https:// (a firewall's doing)
    exact: tuple[tuple[str, Uri], ...] = ()
    heads: tuple[tuple[str, Uri], ...] = ()     # "*.example.com" as ".example.com", longest first
    tails: tuple[tuple[str, Uri], ...] = ()     # "www.example.*" as "www.example.", longest first
    regexes: tuple[re.Pattern[str], ...] = ()
    host_regexes: tuple[re.Pattern[str], ...] = ()   # server_names' regexes: matched against the host


def referers_of(lines: list[tuple[list[str], Source]] | None,
                server_names: tuple[str, ...]) -> Referers | None:
    if not lines:
        return None
    none = blocked = False
    exact: dict[str, Uri] = {}
    heads: list[tuple[str, Uri]] = []
    tails: list[tuple[str, Uri]] = []
    regexes: list[re.Pattern[str]] = []
    host_regexes: list[re.Pattern[str]] = []

    def add(name: str, uri: Uri, source: Source) -> None:
        name = name.lower()
        if name.startswith(("*.", ".")):
            heads.append((name[1:], uri))
            if name.startswith("."):
                exact.setdefault(name[1:], uri)
        elif name.endswith(".*"):
            tails.append((name[:-1], uri))
        elif "*" in name:
            raise ConfigError(f'invalid hostname or wildcard "{name}"', source)
        elif name in exact:
            raise ConfigError(f'conflicting parameter "{name}"', source)
        else:
            exact[name] = uri

    for args, source in lines:
        for arg in args:
            if not arg:
                raise ConfigError('invalid referer ""', source)
            if arg == "none":
                none = True
            elif arg == "blocked":
                blocked = True
            elif arg == "server_names":
                for name in server_names:
                    if name.startswith("~"):
                        host_regexes.append(compile_regex(name[1:], source))
                    elif name:
                        add(name, None, source)
            elif arg.startswith("~"):
                regexes.append(compile_regex(arg[1:], source, caseless=True))
            else:
                host, slash, uri = arg.partition("/")
                add(host, slash + uri if slash else None, source)
    if (none or blocked) and not (exact or heads or tails):
        raise ConfigError('the "none" or "blocked" referers are specified in the "valid_referers" directive '
                          "without any valid referer", lines[0][1])
    heads.sort(key=lambda item: -len(item[0]))
    tails.sort(key=lambda item: -len(item[0]))
    return Referers(none, blocked, tuple(exact.items()), tuple(heads), tuple(tails), tuple(regexes),
                    tuple(host_regexes))


def server_names_of(chain: list[Any]) -> tuple[str, ...]:
    """The `server_name` names of the server in `chain` (innermost block first)."""
    for block in chain:
        if block.context == "http.server":
            return tuple(name for args, _ in block.get("server_name", []) for name in args)
    return ()
