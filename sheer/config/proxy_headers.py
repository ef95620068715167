"""What the proxy does to the upstream's response headers, and the body it sends (ngx_http_proxy_module):
`proxy_redirect` (default, off, `from to`, `~regex to`, with variables), `proxy_hide_header` and
`proxy_pass_header` (nginx hides Date, Server, X-Pad and X-Accel-* by default), `proxy_intercept_errors`,
`proxy_set_body`. Read as ngx_http_proxy_redirect and the merge of ngx_http_proxy_loc_conf read them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sheer.config.errors import ConfigError, Source
from sheer.config.regex import compile_regex
from sheer.config.table import HTTP_ALL, Directive, entry
from sheer.config.template import HTTP_PREFIXES, HTTP_VARIABLES, Template, compile_template
from sheer.config.values import parse_flag

# nginx's ngx_http_proxy_hide_headers: never passed to the client unless proxy_pass_header says so
HIDDEN_BY_DEFAULT = frozenset({b"date", b"server", b"x-pad", b"x-accel-expires", b"x-accel-redirect",
                               b"x-accel-limit-rate", b"x-accel-buffering", b"x-accel-charset"})
DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Redirect:
    """One `proxy_redirect` rule: a prefix (`pattern`, with variables) or a regex, and its replacement
    (with the regex's captures)."""

    replacement: Template
    pattern: Template | None = None
    regex: re.Pattern[str] | None = None


def _template(text: str, src: Source) -> Template:
    return compile_template(text, src, HTTP_VARIABLES, HTTP_PREFIXES)


def _redirect(args: list[str], src: Source) -> tuple[str, ...] | Redirect:
    """`off` and `default` stay words (the location resolves `default` with its proxy_pass)."""
    if len(args) == 1:
        if args[0] in ("off", "false", DEFAULT):      # nginx 0.x's "false" is "off"
            return (args[0] if args[0] != "false" else "off",)
        raise ConfigError('invalid parameter "' + args[0] + '"', src)
    pattern, replacement = args
    if pattern == DEFAULT:
        raise ConfigError('invalid parameter "default"', src)
    if pattern.startswith("~"):
        caseless = pattern.startswith("~*")
        regex = compile_regex(pattern[2:] if caseless else pattern[1:], src, caseless=caseless)
        return Redirect(_template(replacement, src), regex=regex)
    return Redirect(_template(replacement, src), pattern=_template(pattern, src))


def _cookie(kind: str) -> Any:
    """`proxy_cookie_domain` / `proxy_cookie_path`: `off`, or FROM TO (`~regex`; a domain's regex is
    caseless and a leading dot of a domain is dropped from both parts, as ngx_http_proxy_cookie_domain)."""
    def convert(args: list[str], src: Source) -> tuple[str, ...] | Redirect:
        if len(args) == 1:
            if args[0] != "off":
                raise ConfigError(f'invalid number of arguments in "proxy_cookie_{kind}" directive', src)
            return ("off",)
        pattern, replacement = args
        if kind == "domain":
            replacement = replacement.removeprefix(".")
        if pattern.startswith("~"):
            caseless = pattern.startswith("~*") or kind == "domain"
            text = pattern[2:] if pattern.startswith("~*") else pattern[1:]
            return Redirect(_template(replacement, src), regex=compile_regex(text, src, caseless=caseless))
        if kind == "domain":
            pattern = pattern.removeprefix(".")
        return Redirect(_template(replacement, src), pattern=_template(pattern, src))
    return convert


@dataclass(frozen=True, slots=True)
class CookieFlags:
    """One `proxy_cookie_flags COOKIE FLAG...` line: the cookie by name (with variables, caseless) or by a
    caseless regex (`~`), and its flags (with variables: secure, nosecure, httponly, nohttponly,
    samesite=strict|lax|none, nosamesite)."""

    flags: tuple[Template, ...]
    name: Template | None = None
    regex: re.Pattern[str] | None = None


def _cookie_flags(args: list[str], src: Source) -> tuple[str, ...] | CookieFlags:
    if len(args) == 1:
        if args[0] != "off":
            raise ConfigError(f'invalid parameter "{args[0]}"', src)
        return ("off",)
    flags = tuple(_template(arg, src) for arg in args[1:])
    if args[0].startswith("~"):
        return CookieFlags(flags, regex=compile_regex(args[0][1:], src, caseless=True))
    return CookieFlags(flags, name=_template(args[0], src))


def cookie_flags(lines: list[tuple[Any, Source]] | None) -> tuple[CookieFlags, ...]:
    """A level's proxy_cookie_flags lines (the innermost level with any); `off` alone: none."""
    found = tuple(value for value, _ in lines or [] if isinstance(value, CookieFlags))
    if lines and len(found) != len(lines) and len(lines) > 1:     # `off` with other lines
        raise ConfigError('"proxy_cookie_flags" directive is duplicate', lines[1][1])
    return found


def cookie_rules(lines: list[tuple[Any, Source]] | None) -> tuple[Redirect, ...]:
    """A level's rules (the innermost level with any); none by default, `off` drops its level's."""
    rules: list[Redirect] = []
    for value, _ in lines or []:
        if not isinstance(value, Redirect):
            return ()
        rules.append(value)
    return tuple(rules)


# ngx_http_upstream_ignore_headers_masks: what `proxy_ignore_headers` may name (case does not matter)
IGNORABLE = frozenset({"x-accel-redirect", "x-accel-expires", "x-accel-limit-rate", "x-accel-buffering",
                       "x-accel-charset", "expires", "cache-control", "set-cookie", "vary"})


def _ignored(args: list[str], src: Source) -> frozenset[str]:
    """`proxy_ignore_headers FIELD ...`: the upstream's headers that are not acted on. sheer acts on
    X-Accel-Redirect and X-Accel-Limit-Rate; the others tell nginx's cache and buffering what to do,
    which sheer has not (accepted, as nginx's, for a configuration copied from it)."""
    for word in args:
        if word.lower() not in IGNORABLE:
            raise ConfigError(f'invalid value "{word}"', src)
    return frozenset(word.lower() for word in args)


DIRECTIVES: tuple[Directive, ...] = (
    entry("proxy_cookie_domain", HTTP_ALL, (1, 2), _cookie("domain"), multi=True),
    entry("proxy_cookie_path", HTTP_ALL, (1, 2), _cookie("path"), multi=True),
    entry("proxy_cookie_flags", HTTP_ALL, (1, None), _cookie_flags, multi=True),
    entry("proxy_redirect", HTTP_ALL, (1, 2), _redirect, multi=True),
    entry("proxy_hide_header", HTTP_ALL, (1, 1), multi=True),
    entry("proxy_pass_header", HTTP_ALL, (1, 1), multi=True),
    entry("proxy_ignore_headers", HTTP_ALL, (1, None), _ignored),
    entry("proxy_intercept_errors", HTTP_ALL, (1, 1),
          lambda a, s: parse_flag(a[0], "proxy_intercept_errors", s)),
    entry("proxy_set_body", HTTP_ALL, (1, 1), lambda a, s: _template(a[0], s)),
    entry("proxy_method", HTTP_ALL, (1, 1), lambda a, s: _template(a[0], s)),
    # after the response, the request goes on to this URI or named location, its answer dropped
    entry("post_action", HTTP_ALL, (1, 1), lambda a, s: None if a[0] == "off" else a[0]),
)


def redirects(lines: list[tuple[Any, Source]] | None, proxy_text: str | None, has_variables: bool,
              location: str, regex_location: bool, source: Source) -> tuple[Redirect, ...]:
    """The location's rules in order. None (no proxy_redirect at any level): nginx's `default`, made of
    proxy_pass's URL and the location's name; `off` drops every rule of its level."""
    implicit = lines is None
    if lines is None:
        lines = [((DEFAULT,), source)]
    rules: list[Redirect] = []
    for value, where in lines:
        if isinstance(value, Redirect):
            rules.append(value)
        elif value == ("off",):
            return ()
        else:   # default
            if proxy_text is None:
                continue          # no proxy_pass here: nothing to rewrite
            if has_variables:
                if not implicit:
                    raise ConfigError('"proxy_redirect default" cannot be used with "proxy_pass" directive '
                                      "with variables", where)
                continue
            url = proxy_text
            host_end = url.find("/", url.find("://") + 3)
            if host_end < 0:      # no URI part: "http://host" becomes "http://host/" -> "/"
                pattern, replacement = url + "/", "/"
            else:
                pattern, replacement = url, ("/" if regex_location else location)
            rules.append(Redirect(Template((replacement,), replacement),
                                  pattern=Template((pattern,), pattern)))
    return tuple(rules)


def hidden(hide: list[tuple[list[str], Source]], passed: list[tuple[list[str], Source]]) -> frozenset[bytes]:
    """The response headers the client never sees: nginx's defaults and proxy_hide_header's, less
    proxy_pass_header's."""
    names = set(HIDDEN_BY_DEFAULT)
    names |= {value[0].lower().encode("latin-1") for value, _ in hide}
    names -= {value[0].lower().encode("latin-1") for value, _ in passed}
    return frozenset(names)
