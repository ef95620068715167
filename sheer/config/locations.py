"""`location` as nginx reads it (ngx_http_core_location): its modifier, written apart or joined
(`location = /`, `location =/`, `location ~* \\.png$`, `location @fallback`), the regex compiled once,
and nginx's rules for locations inside locations and for duplicates."""

from __future__ import annotations

import re

from sheer.config.errors import ConfigError, Source
from sheer.config.regex import compile_regex

MODIFIERS = ("=", "^~", "~", "~*")


def location_args(args: list[str], source: Source) -> tuple[str, str]:
    """(modifier, path): modifier is "", "=", "^~", "~", "~*" or "@" (then the path is the name)."""
    if len(args) == 2:
        if args[0] not in MODIFIERS:
            raise ConfigError(f'invalid location modifier "{args[0]}"', source)
        return args[0], args[1]
    word = args[0]
    for modifier in ("=", "^~", "~*", "~"):
        if word.startswith(modifier) and len(word) > len(modifier):
            return modifier, word[len(modifier):]
    if word.startswith("@"):
        return "@", word
    return "", word


def location_regex(modifier: str, path: str, source: Source) -> re.Pattern[str] | None:
    if modifier not in ("~", "~*"):
        return None
    return compile_regex(path, source, caseless=modifier == "~*")


def check_nesting(modifier: str, path: str, parent: tuple[str, str] | None, source: Source) -> None:
    """nginx's rules for a location inside another (`parent` is its modifier and path)."""
    if parent is None:
        return
    outer_modifier, outer = parent
    if outer_modifier == "=":
        raise ConfigError(f'location "{path}" cannot be inside the exact location "{outer}"', source)
    if outer_modifier == "@":
        raise ConfigError(f'location "{path}" cannot be inside the named location "{outer}"', source)
    if modifier == "@":
        raise ConfigError(f'named location "{path}" can be on the server level only', source)
    if modifier not in ("~", "~*") and not path.startswith(outer):
        raise ConfigError(f'location "{path}" is outside location "{outer}"', source)


def duplicate_key(modifier: str, path: str) -> tuple[str, str] | None:
    """What two locations of one level may not share: an exact match, a prefix (`^~` or not), a name."""
    if modifier in ("~", "~*"):
        return None
    return ("=" if modifier == "=" else "@" if modifier == "@" else "prefix", path)
