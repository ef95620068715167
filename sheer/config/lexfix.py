"""crossplane's lexer reads `${name}` and what follows it up to the next blank as one word: nginx reads
`access_log logs/${host} main;` as two arguments, crossplane as one ("logs/${host} main"). The words its
lexer yields are split where that happened, before its parser (or sheer's brace check) sees them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import crossplane.lexer  # type: ignore[import-untyped]

Token = tuple[str, int, bool]
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


def _fixed(lexer: Callable[[Any], Iterator[Token]]) -> Callable[[Any], Iterator[Token]]:
    def lex_file_object(file_obj: Any) -> Iterator[Token]:
        return split_joined(lexer(file_obj))
    lex_file_object.fixed = True  # type: ignore[attr-defined]
    return lex_file_object


if not getattr(crossplane.lexer._lex_file_object, "fixed", False):
    crossplane.lexer._lex_file_object = _fixed(crossplane.lexer._lex_file_object)
