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
NOTED = REWRITTEN | {b"x-accel-redirect", b"set-cookie"}      # what the proxy looks at before passing it on


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


def rewrite_cookie(value: str, domains: tuple[Redirect, ...], paths: tuple[Redirect, ...],
                   source: VariableSource) -> str:
    """A Set-Cookie's Domain and Path attributes rewritten (ngx_http_proxy_rewrite_cookie): a domain
    compared whole and caseless (its leading dot aside), a path by prefix, or either by a regex."""
    parts = value.split(";")
    for index in range(1, len(parts)):
        name, eq, attribute = parts[index].partition("=")
        key = name.strip().lower()
        rules = domains if key == "domain" else paths if key == "path" else ()
        if not eq or not rules:
            continue
        dot = "." if key == "domain" and attribute.startswith(".") else ""
        subject = attribute[len(dot):]
        for rule in rules:
            if rule.regex is not None:
                match = rule.regex.search(attribute)
                new = render(rule.replacement, Captures(match, source)) if match is not None else None
                dot = ""
            elif key == "domain":
                pattern = render(rule.pattern, source) if rule.pattern is not None else ""
                new = render(rule.replacement, source) if subject.lower() == pattern.lower() else None
            else:
                new = rewrite_value(subject, (rule,), source)
            if new is not None:
                parts[index] = f"{name}={dot}{new}"
                break
    return ";".join(parts)


def rewrite_headers(headers: Headers, rules: tuple[Redirect, ...], source: VariableSource,
                    domains: tuple[Redirect, ...] = (), paths: tuple[Redirect, ...] = ()) -> Headers:
    """The response's headers with Location, Refresh and Set-Cookie rewritten (the others as they came)."""
    if not (rules or domains or paths):
        return headers
    out: Headers = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"set-cookie":
            if domains or paths:
                value = rewrite_cookie(value.decode("latin-1"), domains, paths, source).encode("latin-1")
        elif not rules:
            pass
        elif lower == b"location" and value:
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
