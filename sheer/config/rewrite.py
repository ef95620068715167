"""ngx_http_rewrite_module's directives read as nginx reads them (ngx_http_rewrite, ngx_http_rewrite_if,
ngx_http_rewrite_set): the table entries, and each level's script in the order written (sheer.config
.script), with nginx's `-t` messages. Regexes and templates are compiled here, once."""

from __future__ import annotations

from sheer.config.errors import ConfigError, Source
from sheer.config.regex import compile_regex
from sheer.config.script import Break, Condition, Return, Rewrite, RewriteFlag, SetVar
from sheer.config.table import (
    HTTP,
    HTTP_IF,
    HTTP_LIF,
    HTTP_LOCATION,
    HTTP_SERVER,
    STREAM_SERVER,
    Directive,
    entry,
)
from sheer.config.template import HTTP_PREFIXES, HTTP_VARIABLES, STREAM_VARIABLES, Template, compile_template
from sheer.config.values import parse_flag

SCRIPT_LEVELS = frozenset({HTTP_SERVER, HTTP_LOCATION, HTTP_IF, HTTP_LIF})
# the built-in variables `set` may change (nginx's NGX_HTTP_VAR_CHANGEABLE ones sheer has)
CHANGEABLE = frozenset({"args", "limit_rate"})
_FLAGS: tuple[RewriteFlag, ...] = ("last", "break", "redirect", "permanent")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _rewrite(args: list[str], src: Source) -> Rewrite:
    pattern, replacement = args[0], args[1]
    regex = compile_regex(pattern, src)
    flag: RewriteFlag = ""
    status = 0
    if replacement.startswith(("http://", "https://", "$scheme")):
        status = 302
    if len(args) == 3:
        if args[2] not in _FLAGS:
            raise ConfigError(f'invalid parameter "{args[2]}"', src)
        flag = args[2]
        if flag == "redirect":
            status = 302
        elif flag == "permanent":
            status = 301
    add_args = True
    if replacement.endswith("?") and len(replacement) > 1:
        replacement, add_args = replacement[:-1], False
    elif replacement == "?":
        replacement, add_args = "", False
    template = _template(replacement, src)
    return Rewrite(regex, template, flag, status, "?" in replacement, add_args, src)


def _set(args: list[str], src: Source) -> SetVar:
    name = args[0]
    if not name.startswith("$") or len(name) < 2:
        raise ConfigError(f'invalid variable name "{name}"', src)
    name = name[1:]
    if name in HTTP_VARIABLES and name not in CHANGEABLE:
        raise ConfigError(f'the duplicate "{name}" variable', src)
    return SetVar(name, _template(args[1], src), src)


def _break(args: list[str], src: Source) -> Break:
    return Break(src)


def _template(text: str, src: Source) -> Template:
    # a regex's named captures are declared with the configuration's variables (sheer.config.maps)
    return compile_template(text, src, HTTP_VARIABLES, HTTP_PREFIXES)


def _stream_set(args: list[str], src: Source) -> tuple[str, Template]:
    """ngx_stream_set_module's `set` (stream server level)."""
    name = args[0]
    if not name.startswith("$") or len(name) < 2:
        raise ConfigError(f'invalid variable name "{name}"', src)
    if name[1:] in STREAM_VARIABLES:
        raise ConfigError(f'the duplicate "{name[1:]}" variable', src)
    return name[1:], compile_template(args[1], src, STREAM_VARIABLES)


DIRECTIVES: tuple[Directive, ...] = (
    entry("set", {STREAM_SERVER}, (2, 2), _stream_set, multi=True, key="stream_set"),
    entry("rewrite", SCRIPT_LEVELS, (2, 3), _rewrite, script=True),
    entry("set", SCRIPT_LEVELS, (2, 2), _set, script=True),
    entry("break", SCRIPT_LEVELS, (0, 0), _break, script=True),
    entry("if", {HTTP_SERVER, HTTP_LOCATION}, (1, None), block=HTTP_IF, script=True),
    entry("rewrite_log", {HTTP} | SCRIPT_LEVELS, (1, 1), lambda a, s: parse_flag(a[0], "rewrite_log", s)),
    entry("uninitialized_variable_warn", {HTTP} | SCRIPT_LEVELS, (1, 1),
          lambda a, s: parse_flag(a[0], "uninitialized_variable_warn", s)),
)


def script_return(args: list[str], source: Source) -> Return:
    """`return code [text]`, `return code URL`, `return URL` (a 302), as ngx_http_rewrite_return."""
    first = args[0]
    if not (first.isascii() and first.isdigit()):
        if len(args) == 2 or not first.startswith(("http://", "https://", "$scheme")):
            raise ConfigError(f'invalid return code "{first}"', source)
        return Return(302, _template(first, source), source)
    code = int(first)
    if code > 999:
        raise ConfigError(f'invalid return code "{first}"', source)
    return Return(code, _template(args[1], source) if len(args) == 2 else None, source)


def condition(args: list[str], source: Source) -> Condition:
    """ngx_http_rewrite_if_condition: `$var`, `$var = s`, `$var != s`, `$var ~ re` (`~*`, `!~`, `!~*`),
    `-f path` (`-d`, `-e`, `-x`, and `!` before each)."""
    if not args or not args[0]:
        raise ConfigError('invalid condition "if"', source)
    first = args[0]
    if first.startswith("$"):
        subject = _template(first, source)
        if len(subject.parts) != 1 or subject.is_literal:
            raise ConfigError(f'invalid condition "{first}"', source)
        if len(args) == 1:
            return Condition("value", subject)
        op = args[1]
        if len(args) != 3:
            raise ConfigError(f'unexpected "{args[-1]}" in condition', source)
        if op in ("=", "!="):
            return Condition("equal", subject, op == "!=", operand=_template(args[2], source))
        if op in ("~", "~*", "!~", "!~*"):
            regex = compile_regex(args[2], source, caseless=op.endswith("*"))
            return Condition("match", subject, op.startswith("!"), regex=regex)
        raise ConfigError(f'unexpected "{op}" in condition', source)
    negate = first.startswith("!")
    test = first[1:] if negate else first
    if test in ("-f", "-d", "-e", "-x") and len(args) == 2:
        return Condition("file", _template(args[1], source), negate, test=test)   # type: ignore[arg-type]
    raise ConfigError(f'invalid condition "{first}"', source)


def redirect_code(code: int) -> bool:
    return code in _REDIRECTS
