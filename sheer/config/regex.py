"""nginx's regular expressions (PCRE) as Python's `re`, compiled once, when the configuration is read.

The two dialects agree on what configurations use (classes, anchors, alternation, quantifiers, lazy and
possessive ones, atomic groups, lookaround); PCRE's named groups `(?<name>...)` and `(?'name'...)`
are spelled `(?P<name>...)` in Python and are rewritten so. A pattern Python cannot compile is the
configuration's error, at its line, naming the pattern.
"""

from __future__ import annotations

import re

from sheer.config.errors import ConfigError, Source

_NAMED = re.compile(r"\(\?(?:<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)')")


_QUOTED = re.compile(r"\\Q(.*?)(?:\\E|$)", re.DOTALL)
_LEADING_FLAGS = re.compile(r"\(\?([imsx]*-[imsx]+)\)")


def python_pattern(pcre: str) -> str:
    """PCRE's named-group spellings as Python's (lookbehind `(?<=`, `(?<!` stays as it is), and its
    `\\Q...\\E` quoting as escaped characters, `\\p{N}` and `\\p{L}` as Python's classes."""
    if "\\Q" in pcre:
        pcre = _QUOTED.sub(lambda m: re.escape(m.group(1)), pcre)
    if "\\p{" in pcre:          # the Unicode classes configurations use: numbers, letters
        pcre = pcre.replace("\\p{N}", "\\d").replace("\\p{L}", "[^\\W\\d_]")
    flags = _LEADING_FLAGS.match(pcre)
    if flags is not None and "-" in flags.group(1):     # `(?-i)x`: Python takes it only as `(?-i:x)`
        pcre = f"(?{flags.group(1)}:{pcre[flags.end():]})"
    return _NAMED.sub(lambda m: f"(?P<{m.group(1) or m.group(2)}>", pcre)


def compile_regex(pcre: str, source: Source | None, *, caseless: bool = False) -> re.Pattern[str]:
    try:
        return re.compile(python_pattern(pcre), re.IGNORECASE if caseless else 0)
    except re.error as exc:
        raise ConfigError(f'regular expression "{pcre}" does not compile: {exc}', source) from None
