"""`proxy_redirect` at run time (ngx_http_proxy_rewrite_redirect): the upstream's Location, and the URL
after `url=` in its Refresh, rewritten by the first rule that matches: a prefix replaced, or with a
regex the whole value made from the replacement and its captures. A rewritten Location starting with
"/" is made absolute as nginx's header filter does; one left alone stays as the upstream sent it."""

from __future__ import annotations

from sheer.config.proxy_headers import CookieFlags, Redirect
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
                    domains: tuple[Redirect, ...] = (), paths: tuple[Redirect, ...] = (),
                    flags: tuple[CookieFlags, ...] = ()) -> Headers:
    """The response's headers with Location, Refresh and Set-Cookie rewritten (the others as they came)."""
    if not (rules or domains or paths or flags):
        return headers
    out: Headers = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"set-cookie":
            if domains or paths:
                value = rewrite_cookie(value.decode("latin-1"), domains, paths, source).encode("latin-1")
            if flags:
                value = cookie_flags(value.decode("latin-1"), flags, source).encode("latin-1")
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


_FLAGS: dict[str, tuple[str, str | bool]] = {
    "secure": ("secure", True), "nosecure": ("secure", False), "httponly": ("httponly", True),
    "nohttponly": ("httponly", False), "samesite=strict": ("samesite", "Strict"),
    "samesite=lax": ("samesite", "Lax"), "samesite=none": ("samesite", "None"),
    "nosamesite": ("samesite", False),
}
_ADDED = {"secure": "Secure", "httponly": "HttpOnly"}


def cookie_flags(value: str, rules: tuple[CookieFlags, ...], source: VariableSource) -> str:
    """`proxy_cookie_flags` on one Set-Cookie (ngx_http_proxy_rewrite_cookie_flags): the first line naming
    the cookie sets (or with `no` removes) Secure, HttpOnly and SameSite; an edited cookie is written
    again as nginx does, its attributes joined by "; "."""
    attrs: list[list[str | None]] = []
    for part in value.split(";"):
        key, eq, attribute = part.partition("=")
        attrs.append([key.strip(" "), attribute.strip(" ") if eq else None])
    if attrs[0][1] is None:
        return value
    name = attrs[0][0] or ""
    rule = next((rule for rule in rules
                 if (rule.regex.search(name) is not None if rule.regex is not None
                     else rule.name is not None and render(rule.name, source).lower() == name.lower())), None)
    if rule is None:
        return value
    wanted: dict[str, str | bool] = {}
    for flag in rule.flags:
        found = _FLAGS.get(render(flag, source).lower())
        if found is not None:
            wanted.setdefault(found[0], found[1])
    if not wanted:
        return value
    kept: list[list[str | None]] = [attrs[0]]
    for attr in attrs[1:]:
        key = (attr[0] or "").lower()
        want = wanted.get(key)
        if want is False:
            continue                    # nosecure, nohttponly, nosamesite: the attribute goes
        if want is not None:            # there already: kept (SameSite with the value asked)
            del wanted[key]
            if isinstance(want, str) and (attr[1] or "").lower() != want.lower():
                attr = ["SameSite", want]
        kept.append(attr)
    for key, want in wanted.items():
        if want is not False:
            kept.append([_ADDED[key], None] if want is True else ["SameSite", str(want)])
    return "; ".join(f"{key}={text}" if text is not None else f"{key}" for key, text in kept)
