"""The rewrite module at run time (ngx_http_rewrite_handler and the script codes of
ngx_http_script.c): a level's script runs against one request's variables and says what follows.

Sans-IO: the file tests of `if (-f ...)` are asked of a function the caller passes, and `rewrite_log`'s
lines go to another."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

from sheer.config.script import Break, Condition, FileTest, If, Op, Return, Rewrite, Script, SetVar
from sheer.config.template import Template, Var
from sheer.core.http.variables import RequestVariables
from sheer.core.rate import size
from sheer.core.variables import render

FileCheck = Callable[[FileTest, str], bool]
Log = Callable[[str], None]
MAX_URI_CHANGES = 10     # nginx's NGX_HTTP_MAX_URI_CHANGES: then 500 "rewrite or internal redirection cycle"


class Outcome(enum.Enum):
    DONE = "done"            # the script ended: this location serves the request
    RELOCATE = "relocate"    # the URI changed (`last`, or a rewrite without flag): find the location again
    REDIRECT = "redirect"    # a rewrite to a URL, or `redirect`/`permanent`: `text` is the Location
    RETURN = "return"        # `return`: `code` and `text`
    ERROR = "error"          # answered 500, `text` is the error log's line


@dataclass(slots=True)
class Result:
    outcome: Outcome
    code: int = 0
    text: str | None = None


class Request:
    """What a script changes besides the variables: nginx's r->uri_changed, r->valid_location and
    r->valid_unparsed_uri (False: the URI sent upstream is made from $uri and $args again); `config`, the
    location's `if` whose configuration serves the request (the last one that held; -1: none), `handler`
    whether one that held had its own proxy_pass."""

    __slots__ = ("changes", "config", "handler", "quoted", "unparsed", "uri_changed", "valid_location")

    def __init__(self, variables: RequestVariables) -> None:
        self.changes = MAX_URI_CHANGES + 1     # nginx's r->uri_changes: each new lookup takes one
        self.uri_changed = False
        self.valid_location = True
        self.unparsed = True
        self.config = -1
        self.handler = False
        path = variables.request_uri.partition("?")[0]
        self.quoted = "%" in path or "+" in path       # nginx's quoted_uri || plus_in_uri


def run(script: Script, variables: RequestVariables, state: Request, files: FileCheck,
        log: Log | None = None) -> Result:
    """Runs the script's codes until one ends it (ngx_http_rewrite_handler)."""
    result = _run(script.ops, variables, state, files, log if script.log else None)
    if result is not None:
        return result
    return Result(Outcome.RELOCATE if state.uri_changed else Outcome.DONE)


def _run(ops: tuple[Op, ...], v: RequestVariables, state: Request, files: FileCheck,
         log: Log | None) -> Result | None:
    for op in ops:
        if isinstance(op, Rewrite):
            result = _rewrite(op, v, state, log)
            if result is not None:
                return result
        elif isinstance(op, If):
            if _test(op.condition, v, files):
                if op.config >= 0:     # nginx's r->loc_conf = if_code->loc_conf
                    state.config = op.config
                    state.handler = state.handler or op.handler
                result = _run(op.body, v, state, files, log)
                if result is not None:
                    return result
        elif isinstance(op, SetVar):
            value = render(op.value, v)
            if op.name == "args":
                v.args = value
                state.unparsed = False
            elif op.name == "limit_rate":      # nginx's set handler: a size, else the rate stays
                rate = size(value)
                v.limit_rate = rate if rate is not None else v.limit_rate
            else:
                v.set(op.name, value)
        elif isinstance(op, Return):
            return Result(Outcome.RETURN, op.code, render(op.text, v) if op.text is not None else None)
        else:
            assert isinstance(op, Break)
            return _break(state)
    return None


def _break(state: Request) -> Result:
    if state.uri_changed:          # ngx_http_script_break_code
        state.valid_location = False
        state.uri_changed = False
    return Result(Outcome.DONE)


def _rewrite(op: Rewrite, v: RequestVariables, state: Request, log: Log | None) -> Result | None:
    uri = v.uri
    match = op.regex.search(uri)
    if match is None:
        if log is not None:
            log(f'"{op.regex.pattern}" does not match "{uri}"')
        return None
    if log is not None:
        log(f'"{op.regex.pattern}" matches "{uri}"')
    v.captured(match)
    redirect = op.status != 0
    path, args = _replace(op.replacement, match, v, quote=redirect and state.quoted,
                          split=not redirect and op.args, escape_args=state.quoted)
    if redirect:
        location = unescape_redirect(path)
        if op.add_args and v.args:
            location += ("&" if op.args else "?") + v.args
        if log is not None:
            log(f'rewritten redirect: "{location}"')
        return Result(Outcome.REDIRECT, op.status, location)
    if args is not None:
        v.args = args + ("&" + v.args if op.add_args and v.args else "")
    elif not op.add_args:
        v.args = ""
    if log is not None:
        log(f'rewritten data: "{path}", args: "{v.args}"')
    if not path:
        return Result(Outcome.ERROR, 500, "the rewritten URI has a zero length")
    v.uri = path
    state.unparsed = False
    if op.flag == "break":
        state.valid_location = False
        state.uri_changed = False
        return Result(Outcome.DONE)
    state.uri_changed = True
    if op.stops:                   # last
        return Result(Outcome.RELOCATE)
    return None


def _replace(template: Template, match: re.Match[str], v: RequestVariables, *, quote: bool, split: bool,
             escape_args: bool) -> tuple[str, str | None]:
    """The replacement: its URI part and, when `split` (a `?` in it), its arguments. A capture is
    escaped as an argument in the arguments, and in a redirect, when the request's URI was escaped."""
    out: list[str] = []
    args: list[str] | None = None
    for part in template.parts:
        if isinstance(part, str):
            if split and args is None and "?" in part:
                before, _, after = part.partition("?")
                out.append(before)
                args = [after]
            else:
                (out if args is None else args).append(part)
            continue
        value = _capture(part, match, v)
        if part.name.isdigit() and ((args is not None and escape_args) or quote):
            value = escape_arg(value)
        (out if args is None else args).append(value)
    return "".join(out), ("".join(args) if args is not None else None)


def _capture(part: Var, match: re.Match[str], v: RequestVariables) -> str:
    name = part.name
    if name.isdigit():
        index = int(name)
        return (match.group(index) or "") if index <= match.re.groups else ""
    return v.variable(name)


def _test(condition: Condition, v: RequestVariables, files: FileCheck) -> bool:
    value = render(condition.subject, v)
    kind = condition.kind
    if kind == "value":
        return value not in ("", "0")
    if kind == "equal":
        assert condition.operand is not None
        return (value == render(condition.operand, v)) != condition.negate
    if kind == "match":
        assert condition.regex is not None
        match = condition.regex.search(value)
        if match is not None and not condition.negate:
            v.captured(match)
        return (match is not None) != condition.negate
    assert condition.test is not None
    return files(condition.test, value) != condition.negate


# ngx_escape_uri's NGX_ESCAPE_ARGS: " ", "#", "%", "&", "+", ";", "?", controls and 0x7f-0xff
_ARGS_UNSAFE = frozenset(' #%&+;?') | frozenset(chr(c) for c in [*range(0x20), *range(0x7f, 0x100)])


def escape_arg(text: str) -> str:
    if not any(ch in _ARGS_UNSAFE for ch in text):
        return text
    return "".join(f"%{ord(ch):02X}" if ch in _ARGS_UNSAFE else ch for ch in text)


_QUOTED = re.compile(r"%([0-9A-Fa-f]{2})")


def unescape_redirect(text: str) -> str:
    """ngx_unescape_uri with NGX_UNESCAPE_REDIRECT: up to the first `?`, `%XX` becomes its character
    when that is a printable one above `%`; the rest stays escaped (no header splitting)."""
    path, mark, rest = text.partition("?")
    if "%" in path:
        path = _QUOTED.sub(lambda m: chr(int(m[1], 16)) if 0x25 < int(m[1], 16) < 0x7f else m[0], path)
    return path + mark + rest
