"""`proxy_redirect` at run time (ngx_http_proxy_rewrite_redirect): the upstream's Location, and the URL
after `url=` in its Refresh, rewritten by the first rule that matches: a prefix replaced, or with a
regex the whole value made from the replacement and its captures. A rewritten Location starting with
"/" is made absolute as nginx's header filter does; one left alone stays as the upstream sent it."""

from __future__ import annotations

from sheer.config.proxy_headers import Redirect
from sheer.core.http.headers import Headers
from sheer.core.http.pages import absolute_location
from sheer.core.maps import Captures
from sheer.core.variables import VariableSource, render

REWRITTEN = frozenset({b"location", b"refresh"})
NOTED = REWRITTEN | {b"x-accel-redirect"}      # what the proxy looks at before passing a response on


def rewrite_value(value: str, rules: tuple[Redirect, ...], source: VariableSource) -> str | None:
    for rule in rules:
        if rule.regex is not None:
            match = rule.regex.search(value)
            if match is None:
                continue
            return render(rule.replacement, Captures(match, source))
        assert rule.pattern is not None
        pattern = render(rule.pattern, source)
        if value.startswith(pattern):
            return render(rule.replacement, source) + value[len(pattern):]
    return None


def rewrite_headers(headers: Headers, rules: tuple[Redirect, ...], source: VariableSource) -> Headers:
    """The response's headers with Location and Refresh rewritten (the others as they came)."""
    out: Headers = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"location" and value:
            new = rewrite_value(value.decode("latin-1"), rules, source)
            if new is not None:
                value = absolute_location(new.encode("latin-1", "replace"), source.variable("host"),
                                          source.variable("server_port"))
        elif lower == b"refresh":
            text = value.decode("latin-1")
            at = text.lower().find("url=")
            if at >= 0:
                new = rewrite_value(text[at + 4:], rules, source)
                if new is not None:
                    value = (text[:at + 4] + new).encode("latin-1", "replace")
        out.append((name, value))
    return out
