"""crossplane's lexer reads `${name}` and what follows it up to the next blank as one word: nginx reads
`access_log logs/${host} main;` as two arguments, crossplane as one ("logs/${host} main"). The words its
lexer yields are split where that happened, before its parser (or sheer's brace check) sees them.

It also reads a file line by line, whatever a line's length: a device or a pipe given as a configuration
(`-c /dev/zero`, an `include` of one) would be read forever. Its lexer is given the file in bounded pieces
instead, and a NUL byte or more than MAX_FILE bytes end the reading with a syntax error at that line."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import crossplane.lexer  # type: ignore[import-untyped]

Token = tuple[str, int, bool]
MAX_FILE = 16 << 20   # characters of one file: the largest real configurations (geo lists) are a few MiB
_JOINED = re.compile(r"(\$\{[^}\s]*\})(\s+)")


def split_joined(tokens: Iterator[Token]) -> Iterator[Token]:
    for token, line, quoted in tokens:
        if quoted or "${" not in token:
            yield token, line, quoted
            continue
        while (found := _JOINED.search(token)) is not None:
            yield token[:found.end(1)], line, False
            line += found.group(2).count("\n")
            token = token[found.end():]
        if token:
            yield token, line, False


def bounded(file_obj: Any) -> Iterator[str]:
    """The file's text in pieces of 64 KiB, ending at a NUL or past MAX_FILE."""
    name, line, size = getattr(file_obj, "name", "-"), 1, 0
    while piece := file_obj.read(1 << 16):
        if (at := piece.find("\0")) >= 0:
            at_line = line + piece.count("\n", 0, at)
            raise crossplane.errors.NgxParserSyntaxError("unexpected NUL byte", name, at_line)
        size += len(piece)
        if size > MAX_FILE:
            raise crossplane.errors.NgxParserSyntaxError(
                f"file is larger than {MAX_FILE >> 20} MiB: not a configuration", name, line)
        line += piece.count("\n")
        yield piece


def _fixed(lexer: Callable[[Any], Iterator[Token]]) -> Callable[[Any], Iterator[Token]]:
    def lex_file_object(file_obj: Any) -> Iterator[Token]:
        return split_joined(lexer(bounded(file_obj)))
    lex_file_object.fixed = True  # type: ignore[attr-defined]
    return lex_file_object


if not getattr(crossplane.lexer._lex_file_object, "fixed", False):
    crossplane.lexer._lex_file_object = _fixed(crossplane.lexer._lex_file_object)
