"""`error_page CODE ... [=[RESPONSE]] URI` (ngx_http_core_module), read as ngx_http_core_error_page
reads it: each code 300..599, `=` alone (the redirected answer's own status) or `=CODE`, then the URI:
`/path` (an internal redirect), `@name` (a named location), anything else a redirect (302 unless
`=301`, `=303`, `=307` or `=308`). A level with error_page lines of its own replaces the outer ones."""

from __future__ import annotations

from dataclasses import dataclass

from sheer.config.errors import ConfigError, Source
from sheer.config.template import HTTP_PREFIXES, HTTP_VARIABLES, Template, compile_template

OWN_STATUS = -1          # `=` alone: the status of what the redirect answers


@dataclass(frozen=True, slots=True)
class ErrorPage:
    codes: frozenset[int]
    target: Template
    overwrite: int | None = None      # `=CODE`; OWN_STATUS for `=`; None: the error's own code
    source: Source | None = None

    @property
    def kind(self) -> str:
        """"uri" (an internal redirect), "named" (@name), or "redirect" (a Location for the client)."""
        text = self.target.text
        if text.startswith("/"):
            return "uri"
        if text.startswith("@"):
            return "named"
        return "redirect"


def error_page(args: list[str], source: Source) -> ErrorPage:
    words = list(args)
    target = words.pop()
    overwrite: int | None = None
    if words and words[-1].startswith("="):
        text = words.pop()[1:]
        if not text:
            overwrite = OWN_STATUS
        elif text.isascii() and text.isdigit() and 0 < int(text) < 1000:
            overwrite = int(text)
        else:
            raise ConfigError(f'invalid value "={text}"', source)
    if not words:
        raise ConfigError('invalid number of arguments in "error_page" directive', source)
    codes: set[int] = set()
    for word in words:
        if not (word.isascii() and word.isdigit()):
            raise ConfigError(f'invalid value "{word}"', source)
        code = int(word)
        if code == 499 or not 300 <= code <= 599:
            raise ConfigError(f'value "{word}" must be between 300 and 599', source)
        codes.add(code)
    return ErrorPage(frozenset(codes), compile_template(target, source, HTTP_VARIABLES, HTTP_PREFIXES),
                     overwrite, source)


def find(pages: tuple[ErrorPage, ...], status: int) -> ErrorPage | None:
    for page in pages:
        if status in page.codes:
            return page
    return None
