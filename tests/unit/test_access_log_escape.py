"""log_format escape=default|json|none and `-` for a missing variable, as ngx_http_log_module writes them."""

from __future__ import annotations

import gzip
import itertools
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheer.config import ConfigError, load
from sheer.config.model import AccessLog, LogFormat
from sheer.config.template import compile_template
from sheer.core.variables import MappingSource, render, time_iso8601, time_local
from sheer.io.logs import AccessLogger, _Escaped, _escaped_line, _parts

FORMAT = "$uri$arg_b$arg_c"
_COUNT = itertools.count()
VARIABLES = frozenset({"uri", "upstream_addr", "is_args"})


def logged(tmp_path: Path, escape: str, values: dict[str, str], text: str = FORMAT) -> bytes:
    path = tmp_path / f"{escape}-{next(_COUNT)}.log"     # logs are opened once per path, appending
    template = compile_template(text, None, VARIABLES, ("arg_", "http_"))
    logger = AccessLogger((AccessLog(str(path), LogFormat(escape, template, escape)),))
    logger.write(MappingSource(values))
    return path.read_bytes()


# access_log.t's /escape/"1 %1B%1C "?c=2 request: $arg_b missing
ESCAPE_T = {"uri": '/escape/"1 \x1b\x1c "', "arg_c": "2"}


def test_default_escapes_and_writes_a_dash_for_a_missing_variable(tmp_path: Path) -> None:
    assert logged(tmp_path, "default", ESCAPE_T) == b'/escape/\\x221 \\x1B\\x1C \\x22-2\n'


def test_none_writes_bytes_as_they_came_and_nothing_for_a_missing_variable(tmp_path: Path) -> None:
    assert logged(tmp_path, "none", ESCAPE_T) == b'/escape/"1 \x1b\x1c "2\n'
    # a request's byte over 0x7F (read as latin-1) is written as that byte, not re-encoded
    assert logged(tmp_path, "none", {"uri": "/\xe9"}) == b"/\xe9\n"


def test_json(tmp_path: Path) -> None:
    assert logged(tmp_path, "json", ESCAPE_T) == b'/escape/\\"1 \\u001B\\u001C \\"2\n'
    values = {"uri": 'a\\b\n\r\t\b\f"'}
    assert logged(tmp_path, "json", values) == b'a\\\\b\\n\\r\\t\\b\\f\\"\n'
    # the issue's case: a User-Agent with a quote keeps the JSON line whole
    line = logged(tmp_path, "json", {"http_user_agent": 'x" y'}, '{"ua":"$http_user_agent"}')
    assert line == b'{"ua":"x\\" y"}\n'


def test_found_but_empty_is_empty_not_a_dash(tmp_path: Path) -> None:
    assert logged(tmp_path, "default", {"is_args": ""}, "[$is_args]") == b"[]\n"
    assert logged(tmp_path, "default", {}, "[$upstream_addr]") == b"[-]\n"
    assert logged(tmp_path, "json", {}, "[$upstream_addr]") == b"[]\n"


def conf(tmp_path: Path, log_format: str) -> str:
    path = tmp_path / "sheer.conf"
    path.write_text(f"events {{}}\nhttp {{\n    {log_format}\n    server {{ listen 127.0.0.1:8080; "
                    "return 204; }\n}\n")
    return str(path)


def test_escape_parameter_read(tmp_path: Path) -> None:
    config = load(conf(tmp_path, "log_format j escape=json '{\"u\":\"$uri\"}';"))
    assert config.http is not None


def test_unknown_escaping_is_nginx_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'sheer.conf:3: unknown log format escaping "xml"'):
        load(conf(tmp_path, "log_format j escape=xml $uri;"))


def test_access_log_if_skips_empty_and_zero(tmp_path: Path) -> None:
    path = tmp_path / f"if-{next(_COUNT)}.log"
    condition = compile_template("$arg_l", None, VARIABLES, ("arg_",))
    template = compile_template("$uri", None, VARIABLES, ())
    logger = AccessLogger((AccessLog(str(path), LogFormat("f", template), condition),))
    for l_value in ("", "0", "1", "yes"):
        logger.write(MappingSource({"uri": f"/{l_value}", "arg_l": l_value}))
    assert path.read_text() == "/1\n/yes\n"


def test_access_log_parameters(tmp_path: Path) -> None:
    text = "log_format f $uri;\n    access_log {log} f buffer=32k flush=5s if=$arg_l;"
    config = load(conf(tmp_path, text.format(log=tmp_path / "a.log")))
    assert config.http is not None
    [log] = config.http.servers[0].access_logs
    assert log.condition is not None and log.condition.text == "$arg_l"
    with pytest.raises(ConfigError, match=r'invalid parameter "bogus=1"'):
        load(conf(tmp_path, f"access_log {tmp_path}/a.log combined bogus=1;"))


def test_access_log_gzip_writes_gzip_members(tmp_path: Path) -> None:
    path = tmp_path / f"gz-{next(_COUNT)}.log"
    template = compile_template("$uri", None, VARIABLES, ())
    logger = AccessLogger((AccessLog(str(path), LogFormat("f", template), gzip=1),))
    for uri in ("/a", "/b"):
        logger.write(MappingSource({"uri": uri}))
    data = path.read_bytes()
    assert data[:2] == b"\x1f\x8b"
    assert gzip.decompress(data) == b"/a\n/b\n"          # one member a line: gunzip and zcat read on
    config = load(conf(tmp_path, f"log_format f $uri;\n    access_log {tmp_path}/z.log f gzip=9 flush=1s;"))
    assert config.http is not None and config.http.servers[0].access_logs[0].gzip == 9
    with pytest.raises(ConfigError, match=r'invalid compression level "10"'):
        load(conf(tmp_path, f"access_log {tmp_path}/a.log combined gzip=10;"))


def test_access_log_path_with_variables(tmp_path: Path) -> None:
    # crossplane would read `${arg_name} f` as one word: nginx reads two (sheer.config.lexfix)
    config = load(conf(tmp_path, f"log_format f $uri;\n    access_log {tmp_path}/v_${{arg_name}} f;"))
    assert config.http is not None
    [log] = config.http.servers[0].access_logs
    assert log.variable_path is not None and log.format.name == "f"
    logger = AccessLogger((log,))
    for name in ("one", "two", "one"):
        logger.write(MappingSource({"uri": f"/{name}", "arg_name": name}))
    logger.write(MappingSource({"uri": "/x", "arg_name": "no/such/dir"}))     # the line is lost
    assert (tmp_path / "v_one").read_text() == "/one\n/one\n"
    assert (tmp_path / "v_two").read_text() == "/two\n"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["uri", "arg_b", "arg_c", "upstream_addr"]),
                       st.text(st.characters(max_codepoint=0x2FF), max_size=12)))
def test_a_line_of_escape_default_is_what_escaping_each_value_gives(values: dict[str, str]) -> None:
    """The access log's per-line writer (its parts made once) against _Escaped, the escaping of any
    template: the same bytes for any values (control bytes, quotes, backslashes, latin-1, beyond)."""
    text = 'a "$uri" [$arg_b] $upstream_addr$arg_c \\x'
    template = compile_template(text, None, VARIABLES, ("arg_", "http_"))
    source = MappingSource(values)
    expected = (render(template, _Escaped(source)) + "\n").encode("utf-8", "replace")
    assert _escaped_line(_parts(template), source) == expected


def test_time_texts_are_made_once_per_second_and_change_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert time_local(86400.0) == "02/Jan/1970:00:00:00 +0000"
        assert time_local(86400.9) == "02/Jan/1970:00:00:00 +0000"
        assert time_local(86401.0) == "02/Jan/1970:00:00:01 +0000"
        assert time_iso8601(86401.5) == "1970-01-02T00:00:01+00:00"
    finally:
        monkeypatch.undo()
        time.tzset()
