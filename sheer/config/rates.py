"""Rate limits' values (sheer.core.rate): `limit_rate`, `limit_rate_after`, `proxy_limit_rate`, stream's
`proxy_upload_rate`/`proxy_download_rate`. A size, or (nginx's complex value) a string with variables,
worked out per request or session; a literal is checked here, as nginx's *_complex_value_size_slot."""

from __future__ import annotations

from sheer.config.errors import Source
from sheer.config.table import Convert
from sheer.config.template import Template, compile_template
from sheer.config.values import parse_size

RateValue = int | Template       # bytes a second (0: no limit), or a template that renders a size


def rate_value(name: str, known: frozenset[str], prefixes: tuple[str, ...] = ()) -> Convert:
    def convert(args: list[str], src: Source) -> RateValue:
        if "$" in args[0]:
            template = compile_template(args[0], src, known, prefixes)
            if not template.is_literal:
                return template
        return parse_size(args[0], name, src)
    return convert
