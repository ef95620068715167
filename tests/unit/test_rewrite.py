"""The rewrite module: its directives read as nginx reads them (file:line errors), and its scripts run
sans-IO against one request's variables (sheer.core.http.rewrite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.model import Config, Location
from sheer.config.script import Script
from sheer.core.http.rewrite import Outcome, Request, escape_arg, run, unescape_redirect
from sheer.core.http.variables import Connection, RequestVariables


def _load(tmp_path: Path, body: str, server: str = "") -> Config:
    path = tmp_path / "lb.conf"
    path.write_text("events {}\nhttp {\n server {\n  listen 127.0.0.1:8080;\n" + server
                    + "\n  location / { return 204; }\n" + body + "\n }\n}\n")
    return load(str(path))


def _location(config: Config, path: str) -> Location:
    assert config.http is not None
    return next(loc for loc in config.http.servers[0].locations if loc.path == path)


def _script(tmp_path: Path, lines: str) -> Script:
    script = _location(_load(tmp_path, "location /t {\n" + lines + "\n}"), "/t").rewrite
    assert script is not None
    return script


def _vars(target: str = "/t/a?x=1") -> RequestVariables:
    conn = Connection(("192.0.2.1", 40000), ("127.0.0.1", 8080), 1, "h", 1)
    path, _, args = target.partition("?")
    uri = path.replace("%25", "%").replace("%20", " ")
    return RequestVariables(conn, b"GET", target, uri, args, "HTTP/1.1", [(b"Host", b"example.com")],
                            "example.com", "srv", 10, 0.0)


def _files(test: str, path: str) -> bool:
    return {"-f": path == "/srv/file", "-d": path == "/srv/dir", "-e": path in ("/srv/file", "/srv/dir"),
            "-x": path == "/srv/dir"}[test]


def _run(script: Script, v: RequestVariables) -> tuple[Outcome, int, str | None, Request]:
    state = Request(v)
    result = run(script, v, state, _files)   # type: ignore[arg-type]
    return result.outcome, result.code, result.text, state


# -- reading --

def test_a_level_with_only_return_keeps_the_plain_return(tmp_path: Path) -> None:
    config = _load(tmp_path, "location /t { return 200 x; }")
    assert _location(config, "/t").rewrite is None and _location(config, "/t").return_ is not None


def test_the_script_keeps_the_order_written(tmp_path: Path) -> None:
    script = _script(tmp_path, "set $a 1; if ($a) { return 204; } rewrite ^ /b last; return 200;")
    assert [type(op).__name__ for op in script.ops] == ["SetVar", "If", "Rewrite", "Return"]


@pytest.mark.parametrize(("lines", "message"), [
    ("rewrite ^ /x bogus;", 'lb.conf:8: invalid parameter "bogus"'),
    ("rewrite ^(a /x;", 'regular expression "^(a" does not compile'),
    ("set x 1;", 'invalid variable name "x"'),
    ("set $uri 1;", 'the duplicate "uri" variable'),
    ("if ($arg_a ~~ b) { }", 'unexpected "~~" in condition'),
    ("if (-q /x) { }", 'invalid condition "-q"'),
    ("if ($arg_a = b c) { }", 'unexpected "c" in condition'),
    ("if ($arg_a) { proxy_set_header X 1; }", 'lb.conf:8: "proxy_set_header" directive is not allowed here'),
    ("if ($arg_a) { if ($arg_b) { } }", '"if" directive is not allowed here'),
    ("rewrite_log maybe;", 'invalid value "maybe" in "rewrite_log" directive, it must be "on" or "off"'),
    ("return abc;", 'invalid return code "abc"'),
])
def test_bad_lines_get_nginx_s_messages(tmp_path: Path, lines: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, "location /t {\n" + lines + "\n}")
    assert message in str(caught.value)


def test_set_variables_are_known_before_their_line(tmp_path: Path) -> None:
    config = _load(tmp_path, "location /t { return 200 $later; }\nlocation /u { set $later 1; }")
    assert _location(config, "/t").return_ is not None


# -- running --

def test_redirect_appends_the_request_s_arguments(tmp_path: Path) -> None:
    script = _script(tmp_path, "rewrite ^ http://example.com/?c=d redirect;")
    assert _run(script, _vars("/t?a=b"))[:3] == (Outcome.REDIRECT, 302, "http://example.com/?c=d&a=b")
    script = _script(tmp_path, "rewrite ^ http://example.com/ permanent;")
    assert _run(script, _vars("/t?a=b"))[:3] == (Outcome.REDIRECT, 301, "http://example.com/?a=b")


def test_a_trailing_question_mark_drops_the_arguments(tmp_path: Path) -> None:
    script = _script(tmp_path, "rewrite ^ http://example.com/?c=d? redirect;")
    assert _run(script, _vars("/t?a=b"))[2] == "http://example.com/?c=d"
    script = _script(tmp_path, "rewrite ^/t(.*) /u$1? last;")
    v = _vars("/t/x?a=b")
    assert _run(script, v)[0] is Outcome.RELOCATE and (v.uri, v.args) == ("/u/x", "")


def test_captures_in_the_arguments_are_escaped_when_the_uri_was(tmp_path: Path) -> None:
    script = _script(tmp_path, 'rewrite ^(.*) $1?c=$1; return 200 "uri:$uri args:$args";')
    v = _vars("/t/%25?a=b")
    outcome, code, text, _ = _run(script, v)
    assert (outcome, code, text) == (Outcome.RETURN, 200, "uri:/t/% args:c=/t/%25&a=b")


def test_last_break_and_no_flag(tmp_path: Path) -> None:
    v = _vars("/t/a")
    outcome, _, _, state = _run(_script(tmp_path, "rewrite ^ /b; set $x 1;"), v)
    assert outcome is Outcome.RELOCATE and v.variable("x") == "1" and state.uri_changed
    v = _vars("/t/a")
    outcome, _, _, state = _run(_script(tmp_path, "rewrite ^ /b last; set $x 1;"), v)
    assert outcome is Outcome.RELOCATE and v.variable("x") == ""
    v = _vars("/t/a")
    outcome, _, _, state = _run(_script(tmp_path, "rewrite ^ /b break; set $x 1;"), v)
    assert outcome is Outcome.DONE and v.uri == "/b" and not state.valid_location and v.variable("x") == ""
    outcome, _, _, state = _run(_script(tmp_path, "rewrite ^ /b; break; return 200;"), _vars())
    assert outcome is Outcome.DONE and not state.valid_location and not state.unparsed


@pytest.mark.parametrize(("condition", "target", "true"), [
    ("$arg_c", "/t?c=1", True), ("$arg_c", "/t?c=0", False), ("$arg_c", "/t", False),
    ("$arg_c = 1", "/t?c=1", True), ("$arg_c = 1", "/t?c=2", False),
    ("$arg_c != 2", "/t?c=1", True), ("$arg_c != 2", "/t?c=2", False),
    ("$arg_c ~ foo", "/t?c=food", True), ("$arg_c ~ foo", "/t?c=FooD", False),
    ("$arg_c ~* foo", "/t?c=FooD", True), ("$arg_c !~ foo", "/t?c=FooD", True),
    ("$arg_c !~* foo", "/t?c=FooD", False), ("$arg_c = ''", "/t", True),
    ("-f /srv/$arg_c", "/t?c=file", True), ("-f /srv/$arg_c", "/t?c=dir", False),
    ("!-f /srv/$arg_c", "/t?c=dir", True), ("-d /srv/$arg_c", "/t?c=dir", True),
    ("-e /srv/$arg_c", "/t?c=nx", False), ("!-e /srv/$arg_c", "/t?c=nx", True),
    ("-x /srv/$arg_c", "/t?c=dir", True), ("!-x /srv/$arg_c", "/t?c=file", True),
])
def test_conditions(tmp_path: Path, condition: str, target: str, true: bool) -> None:
    script = _script(tmp_path, f"if ({condition}) {{ return 204; }}")
    assert (_run(script, _vars(target))[0] is Outcome.RETURN) is true


def test_if_captures_numbered_and_named(tmp_path: Path) -> None:
    script = _script(tmp_path, 'if ($arg_c ~ (?<word>fo+)(.)) { return 200 "$word $1 $2 $3"; }')
    assert _run(script, _vars("/t?c=xfoob"))[2] == "foo foo b "


def test_set_args_changes_the_uri_sent_upstream(tmp_path: Path) -> None:
    v = _vars("/t?a=b")
    outcome, _, _, state = _run(_script(tmp_path, "set $args x=1;"), v)
    assert outcome is Outcome.DONE and v.args == "x=1" and not state.unparsed and not state.uri_changed


def test_set_limit_rate_takes_a_size(tmp_path: Path) -> None:
    v = _vars("/t?l=40k")
    _run(_script(tmp_path, "set $limit_rate $arg_l;"), v)
    assert v.limit_rate == 40960 and v.variable("limit_rate") == "40960"
    v = _vars("/t")
    _run(_script(tmp_path, "set $limit_rate $arg_l;"), v)          # no size: the rate stays (nginx's 0)
    assert v.limit_rate is None and v.variable("limit_rate") == "0"
def test_set_limit_rate_reads_a_size(tmp_path: Path) -> None:
    # nginx's $limit_rate set handler: a size, or (with its "invalid size" error) no change
    script = _script(tmp_path, "set $limit_rate $arg_l;")
    for args, rate in (("l=40k", 40960), ("l=100", 100), ("", None), ("l=fast", None)):
        v = _vars(f"/t/a?{args}")
        _run(script, v)
        assert v.limit_rate == rate, args
        assert v.variable("limit_rate") == str(rate or 0)


def test_set_overrides_a_header_variable(tmp_path: Path) -> None:
    v = _vars()
    _run(_script(tmp_path, 'set $http_host_x "mine";'), v)
    assert v.variable("http_host_x") == "mine" and v.variable("http_host") == "example.com"


def test_an_empty_rewritten_uri_is_a_500(tmp_path: Path) -> None:
    outcome, code, text, _ = _run(_script(tmp_path, "rewrite ^.* $arg_none;"), _vars())
    assert (outcome, code, text) == (Outcome.ERROR, 500, "the rewritten URI has a zero length")


def test_rewrite_log_lines(tmp_path: Path) -> None:
    script = _script(tmp_path, "rewrite_log on; rewrite ^/x /y; rewrite ^/t /u;")
    lines: list[str] = []
    run(script, _vars("/t/a"), Request(_vars("/t/a")), _files, lines.append)   # type: ignore[arg-type]
    assert lines == ['"^/x" does not match "/t/a"', '"^/t" matches "/t/a"', 'rewritten data: "/u", args: ""']


def test_server_level_script(tmp_path: Path) -> None:
    config = _load(tmp_path, "", server="rewrite ^/old/(.*) /new/$1 permanent;")
    assert config.http is not None
    script = config.http.servers[0].rewrite
    assert script is not None
    v = _vars("/old/x")
    assert _run(script, v)[:3] == (Outcome.REDIRECT, 301, "/new/x")   # made absolute when answered


def test_redirect_unescaping_keeps_what_would_split_headers() -> None:
    assert unescape_redirect("http%3A%2F%2Fexample.com%2F%3Ffrom") == "http://example.com/?from"
    assert unescape_redirect("http%3A%2F%2Fexample.com%0D%0Asplit") == "http://example.com%0D%0Asplit"
    assert unescape_redirect("/a%20b?x=%41") == "/a%20b?x=%41"
    assert escape_arg("/a b&c%") == "/a%20b%26c%25"


def test_pcre_quoting_and_unicode_classes_read() -> None:
    from sheer.config.regex import compile_regex
    assert compile_regex(r"^(?<name>[a-z]+)\Q.example.com\E$", None).match("a.example.com")
    assert not compile_regex(r"^\Qa.b\E$", None).match("axb")
    assert compile_regex(r"^www\p{N}+$", None).match("www12")


def test_server_name_lines_add_names(tmp_path: Path) -> None:
    config = _load(tmp_path, "", server="server_name a.test; server_name b.test c.test;")
    assert config.http is not None and config.http.servers[0].server_names == ("a.test", "b.test", "c.test")


def test_request_body_file_is_empty_before_any_body_was_written() -> None:
    # nginx: "" when no body went to a file (a request answered by `return`, say); never an error
    v = _vars("/t")
    assert v.variable("request_body_file") == "" and v.variable("gzip_ratio") == ""
