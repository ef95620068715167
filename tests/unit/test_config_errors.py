"""Every config error names file:line and uses nginx's wording (nginx -t)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sheer.config import ConfigError, load
from sheer.config.errors import Source
from sheer.config.values import parse_number, parse_time

OK_SERVER = "server { listen 1000; proxy_pass 127.0.0.1:1; }"


def error_of(tmp_path: Path, text: str, name: str = "sheer.conf") -> ConfigError:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(str(path))
    return info.value


def assert_error(tmp_path: Path, text: str, line: int, message: str) -> None:
    error = error_of(tmp_path, text)
    assert error.source is not None, str(error)
    assert (error.source.file, error.source.line) == (str(tmp_path / "sheer.conf"), line), str(error)
    assert error.message == message
    assert str(error) == f"{tmp_path / 'sheer.conf'}:{line}: {message}"


def stream(*lines: str) -> str:
    """A stream config whose lines start at line 2 (line 1 is `stream {`)."""
    return "stream {\n" + "\n".join(lines) + "\n}\n"


@pytest.mark.parametrize(("text", "line", "message"), [
    (stream("    foo on;", OK_SERVER), 2, 'unknown directive "foo"'),
    (stream(OK_SERVER, "    server {", "        listen 1001;", "        proxy_pass 127.0.0.1:1;",
            "        proxy_timoeut 1s;", "    }"), 6, 'unknown directive "proxy_timoeut"'),
    ("proxy_timeout 1s;\n" + stream(OK_SERVER), 1, '"proxy_timeout" directive is not allowed here'),
    (stream("    server { listen 1000; proxy_pass 127.0.0.1:1;", "    proxy_set_header A b; }"), 3,
     '"proxy_set_header" directive is not allowed here'),
    ("http {\n server {\n listen 80;\n location / { return 200; proxy_responses 1; }\n }\n}\n", 4,
     '"proxy_responses" directive is not allowed here'),
    ("stream {\n worker_processes 2;\n}\n", 2, '"worker_processes" directive is not allowed here'),
    (stream("    proxy_timeout 1s 2s;", OK_SERVER), 2,
     'invalid number of arguments in "proxy_timeout" directive'),
    (stream("    server {", "      listen;", "    }"), 3,
     'invalid number of arguments in "listen" directive'),
    ("worker_processes;\n" + stream(OK_SERVER), 1,
     'invalid number of arguments in "worker_processes" directive'),
    (stream("    proxy_timeout 10 s;", OK_SERVER), 2,
     'invalid number of arguments in "proxy_timeout" directive'),
    (stream("    proxy_responses -1;", OK_SERVER), 2,
     '"proxy_responses" takes a non-negative number, got "-1"'),
    (stream("    proxy_responses one;", OK_SERVER), 2,
     '"proxy_responses" takes a non-negative number, got "one"'),
    (stream("    proxy_responses \u0661;", OK_SERVER), 2,
     '"proxy_responses" takes a non-negative number, got "\u0661"'),
    ("worker_processes 0;\n" + stream(OK_SERVER), 1, '"worker_processes" takes a number >= 1, got "0"'),
    ("events {\n worker_connections lots;\n}\n" + stream(OK_SERVER), 2,
     '"worker_connections" takes a number >= 1, got "lots"'),
    (stream("    upstream u {", "        server 127.0.0.1:1 weight=0;", "    }",
            "    server { listen 1; proxy_pass u; }"), 3, '"weight" takes a number >= 1, got "0"'),
    (stream("    proxy_timeout 10x;", OK_SERVER), 2,
     '"proxy_timeout" directive invalid value "10x", expected a time such as 10s, 500ms or 1m30s'),
    (stream("    proxy_connect_timeout 1s1m;", OK_SERVER), 2,
     '"proxy_connect_timeout" directive invalid value "1s1m", expected a time such as 10s, 500ms or 1m30s'),
    (stream("    upstream u {", "        server 127.0.0.1:1 fail_timeout=soon;", "    }",
            "    server { listen 1; proxy_pass u; }"), 3,
     '"fail_timeout" directive invalid value "soon", expected a time such as 10s, 500ms or 1m30s'),
    (stream("    proxy_timeout 1s;", "    proxy_timeout 2s;", OK_SERVER), 3,
     '"proxy_timeout" directive is duplicate'),
    ("pid a.pid;\npid b.pid;\n" + stream(OK_SERVER), 2, '"pid" directive is duplicate'),
    (stream(OK_SERVER) + stream(OK_SERVER), 4, '"stream" directive is duplicate'),
    (stream("    upstream u { server 127.0.0.1:1; }", "    upstream u { server 127.0.0.1:2; }", OK_SERVER), 3,
     'duplicate upstream "u"'),
    (stream("    server {", "        listen 1000;", "        proxy_pass backend:53;", "    }"), 4,
     'host not found in upstream "backend"'),
    ("http {\n server {\n  listen 80;\n  location / {\n   proxy_pass http://backend/;\n  }\n }\n}\n", 5,
     'host not found in upstream "backend"'),
    (stream("    upstream u {", "        server 127.0.0.11;", "    }",
            "    server { listen 1; proxy_pass u; }"), 3,
     'no port in upstream "127.0.0.11"'),
    (stream("    server {", "        listen 1000;", "        proxy_pass 127.0.0.1;", "    }"), 4,
     'no port in upstream "127.0.0.1" (and no upstream block of that name)'),
    (stream("    server {", "        listen 1000;", "        proxy_pass 127.0.0.1:1;"), 5,
     'unexpected end of file, expecting "}"'),
    (stream("    server {", "        listen 1000;", "        proxy_pass 127.0.0.1:1 }"), 4, 'unexpected "}"'),
    (stream("    server {", "        listen 1000;", "        proxy_pass 127.0.0.1:1;", "    }", "}"), 7,
     'unexpected "}"'),
    (stream("    server {", "        listen 1000 udp;", "        proxy_pass 127.0.0.1:1;",
            "        health_check interval=20 passes=2 fails=2 match=nosuch udp;", "    }"), 5,
     'match "nosuch" not found'),
    (stream("    match dns {", '        expect ~* "health(";', "    }", OK_SERVER), 3,
     '"expect" regex "health(" is invalid: missing ), unterminated subpattern at position 6'),
    (stream("    match dns {", '        send "a";', '        send "b";', "    }", OK_SERVER), 4,
     '"send" directive is duplicate'),
    (stream("    match dns {", '        expect is here;', "    }", OK_SERVER), 3,
     'invalid parameter "is" in "expect", it must be "~" or "~*"'),
    (stream("    server {", "        listen 1000;", "        proxy_pass 127.0.0.1:1;",
            "        health_check fails=0;", "    }"), 5,
     '"health_check fails" takes a number >= 1, got "0"'),
    (stream("    server {", "        listen 1000;", "        proxy_pass 127.0.0.1:1;",
            "        health_check persistent;", "    }"), 5,
     '"persistent" requires "mandatory" in "health_check"'),
    (stream("    server {", "        listen 1000;", "        proxy_pass 127.0.0.1:1;",
            "        health_check uri=/;", "    }"), 5, 'invalid parameter "uri=/"'),
    (stream("    server {", "        listen 1000;", "        proxy_pass 127.0.0.1:1;",
            "        health_check;", "        health_check;", "    }"), 6,
     '"health_check" directive is duplicate'),
    ("http {\n match m { status 600; }\n}\n", 2, 'invalid status "600"'),
    ("http {\n match m { header X ? y; }\n}\n", 2,
     'invalid operator "?" in "header", it must be "=", "!=", "~" or "!~"'),
    ("http {\n match m { send x; }\n}\n", 2, '"send" directive is not allowed here'),
    (stream("    match m { status 200; }", OK_SERVER), 2, '"status" directive is not allowed here'),
    (stream("    server {", "        listen 53 udp;", "        proxy_pass 127.0.0.1:53;",
            "        proxy_responses 0;",
            "        proxy_bind $remote_addr:$remote_port transparent;", "    }"), 6,
     ("direct server return (proxy_responses 0) without an active health check: sheer never sees the "
      "replies, so a dead upstream would keep getting its share of the queries; add \"health_check udp;\" "
      "(or \"health_check match=<name> udp;\") to this server, or write \"dsr_without_health_check on;\" to "
      "run it unchecked knowingly")),
    (stream("    server {", "        listen 1000;", '        return "$remote_addr $nosuch";', "    }"), 4,
     'unknown "nosuch" variable'),
    ("http {\n log_format x '$remote_addr $bogus';\n}\n", 2, 'unknown "bogus" variable'),
    (stream("    server {", "        listen 1000;", "        proxy_bind $client transparent;",
            "        proxy_pass 127.0.0.1:1;", "    }"), 4, 'unknown "client" variable'),
    ("stream;\n", 1, 'directive "stream" has no opening "{"'),
    (stream("    server {", "        listen 127.0.0.1;", "        proxy_pass 127.0.0.1:1;", "    }"), 3,
     'no port in "127.0.0.1" of the "listen" directive'),
    (stream("    upstream u {", "        hash $remote_addr;", "        server 127.0.0.1:1 backup;", "    }",
            OK_SERVER),
     4, 'balancing method does not support parameter "backup"'),
    # numbers, sizes and times beyond what nginx's ngx_atoi/ngx_parse_size/ngx_parse_time take
    ("http {\n upstream u {\n  server 127.0.0.1:1;\n  keepalive 99999999999999999999;\n }\n}\n", 4,
     '"keepalive" takes a number >= 1, got "99999999999999999999"'),
    (stream("    upstream u {", "        server 127.0.0.1:1 weight=9223372036854775808;", "    }",
            OK_SERVER), 3,
     '"weight" takes a number >= 1, got "9223372036854775808"'),
    (stream("    proxy_timeout 999999999999999999y;", OK_SERVER), 2,
     '"proxy_timeout" directive invalid value "999999999999999999y", the time is too large'),
    (stream("    upstream u {", "        hash $remote_addr consistent;",
            "        server 127.0.0.1:1 weight=60000;",
            "        server 127.0.0.2:1 weight=40001;", "    }", OK_SERVER), 3,
     ('the servers\' total weight 100001 is too large for "hash ... consistent" (at most 100000: it builds a '
     "table in proportion to the weights); use smaller weights in the same ratio")),
    ("user r\0oot;\n" + stream(OK_SERVER), 1, "unexpected NUL byte"),
    (stream(OK_SERVER, '    # a comment is no place for \0 either'), 3, "unexpected NUL byte"),
    ("events {}\n" + "http {\n" * 70 + "}\n" * 70, 66, "blocks nested more than 64 levels deep"),
])
def test_error_names_file_line_and_nginx_wording(tmp_path: Path, text: str, line: int, message: str) -> None:
    assert_error(tmp_path, text, line, message)


def test_include_of_missing_file(tmp_path: Path) -> None:
    assert_error(tmp_path, stream("    include missing.conf;", OK_SERVER), 2,
                 f'open() "{tmp_path / "missing.conf"}" failed (2: No such file or directory)')


def test_error_inside_an_included_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "servers.conf").write_text(f"{OK_SERVER}\n\nserver {{ listen 1001; proxy_timeout soon; }}\n")
    error = error_of(tmp_path, stream("    include servers.conf;"))
    assert error.source == Source(str(tmp_path / "servers.conf"), 3)
    assert '"proxy_timeout" directive invalid value "soon"' in error.message


def test_include_loop(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("include b.conf;\n")
    (tmp_path / "b.conf").write_text("include a.conf;\n")
    error = error_of(tmp_path, "include a.conf;\n" + stream(OK_SERVER))
    assert error.source is not None and error.source.file == str(tmp_path / "b.conf")
    assert "loops back" in error.message


def test_error_in_global_directives(tmp_path: Path) -> None:
    path = tmp_path / "sheer.conf"
    path.write_text(stream(OK_SERVER))
    with pytest.raises(ConfigError) as info:
        load(str(path), global_directives="worker_processes none;")
    assert info.value.source == Source("command line", 1)
    assert info.value.message == '"worker_processes" takes a number >= 1, got "none"'


def test_nothing_to_serve(tmp_path: Path) -> None:
    error = error_of(tmp_path, "worker_processes 1;\n")
    assert 'no "http" or "stream" block' in str(error)


def test_the_same_listen_twice_in_stream(tmp_path: Path) -> None:
    assert_error(tmp_path,
                 stream(OK_SERVER, "    server {", "        listen 1000;", "        return x;", "    }"),
                 4, 'duplicate "0.0.0.0:1000" address and port pair')


# --- times and numbers --------------------------------------------------------------------

SRC = Source("t.conf", 1)
UNITS = (("y", 31536000), ("M", 2592000), ("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


@pytest.mark.parametrize(("text", "seconds"), [
    ("10m", 600.0), ("60s", 60.0), ("60", 60.0), ("1m30s", 90.0), ("500ms", 0.5), ("1s500ms", 1.5),
    ("1h1m1s", 3661.0), ("0", 0.0), ("1m30", 90.0), ("2d", 172800.0),
])
def test_parse_time(text: str, seconds: float) -> None:
    assert parse_time(text, "proxy_timeout", SRC) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "1.5s", "-1s", "1s1m", "1m1m", "1ms1s", "10 s", "1x", "1s2"])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_time(text, "proxy_timeout", SRC)


@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=len(UNITS) + 1, max_size=len(UNITS) + 1),
       st.lists(st.booleans(), min_size=len(UNITS) + 1, max_size=len(UNITS) + 1))
def test_time_round_trip(values: list[int], used: list[bool]) -> None:
    """Any nginx time written from its parts (units in decreasing order) parses back to its value."""
    units = [*UNITS, ("ms", 0.001)]
    if not any(used):
        used = [False] * len(UNITS) + [True]
    text = "".join(f"{value}{unit}" for value, (unit, _), on in zip(values, units, used) if on)
    expected = sum(value * scale for value, (_, scale), on in zip(values, units, used) if on)
    assert parse_time(text, "proxy_timeout", SRC) == pytest.approx(expected)
    # written in the largest units, as nginx -T might: 90s -> 1m30s
    whole_ms = round(expected * 1000)
    parts, rest = [], whole_ms
    for unit, scale in units:
        count, rest = divmod(rest, round(scale * 1000))
        if count:
            parts.append(f"{count}{unit}")
    canonical = "".join(parts) or "0"
    assert parse_time(canonical, "proxy_timeout", SRC) == pytest.approx(expected)


@pytest.mark.parametrize(("text", "ok"),
                         [("0", True), ("17", True), ("-1", False), ("+1", False), ("1.0", False),
                                          ("", False), ("\u0661", False), ("1 ", False)])
def test_parse_number(text: str, ok: bool) -> None:
    if ok:
        assert parse_number(text, "n", SRC) == int(text)
    else:
        with pytest.raises(ConfigError, match='"n" takes a non-negative number'):
            parse_number(text, "n", SRC)


def _dsr(listen: str, *servers: str) -> str:
    return stream("    server {", f"        listen {listen};", "        proxy_responses 0;",
                  "        proxy_bind $remote_addr:$remote_port transparent;",
                  "        dsr_without_health_check on;",
                  "        proxy_pass u;", "    }", "    upstream u {",
                  *(f"        server {s};" for s in servers), "    }")


@pytest.mark.parametrize(("text", "message"), [
    (_dsr("53 udp", "[fd00:16::11]:53"),
     ('direct server return: upstream server "[fd00:16::11]:53" is IPv6 but the listener takes IPv4 '
      "clients, whose address and port become the datagram's source; put each family's upstreams behind a "
      "server of that family")),
    (_dsr("[::]:53 udp", "172.16.0.11:53"),
     ('direct server return: upstream server "172.16.0.11:53" is IPv4 but the listener takes IPv6 '
      "clients, whose address and port become the datagram's source; put each family's upstreams behind a "
      "server of that family")),
    (_dsr("[::]:53 udp ipv6only=off", "[fd00:16::11]:53"),
     ("direct server return on an IPv6 listener with ipv6only=off: its IPv4 clients cannot be the source "
      "of an IPv6 datagram; leave ipv6only on and add an IPv4 server")),
])
def test_dsr_is_per_address_family(tmp_path: Path, text: str, message: str) -> None:
    assert_error(tmp_path, text, 5, message)


def test_dsr_over_ipv6_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "sheer.conf"
    path.write_text(_dsr("[::]:53 udp", "[fd00:16::11]:53", "[fd00:16::12]:53"))
    server = load(str(path)).stream.servers[0]  # type: ignore[union-attr]
    assert server.dsr and server.listens[0].family == 6


def test_listen_buffers(tmp_path: Path) -> None:
    path = tmp_path / "sheer.conf"
    path.write_text("stream {\n    server { listen 127.0.0.1:9000 sndbuf=32k rcvbuf=1m; "
                    "proxy_pass 127.0.0.1:1; }\n}\n")
    assert load(str(path)).stream.servers[0].listens[0].sndbuf == 32768      # type: ignore[union-attr]
    assert load(str(path)).stream.servers[0].listens[0].rcvbuf == 1 << 20    # type: ignore[union-attr]
    bad = "stream {\n    server { listen 127.0.0.1:9000 sndbuf=big; proxy_pass 127.0.0.1:1; }\n}\n"
    assert error_of(tmp_path, bad).message == 'invalid sndbuf "big"'


def test_listen_port_range(tmp_path: Path) -> None:
    path = tmp_path / "sheer.conf"
    path.write_text("stream {\n    server { listen 127.0.0.1:9000-9002; listen [::1]:9005-9005; listen 9010; "
                    "proxy_pass 127.0.0.1:1; }\n}\n")
    listens = load(str(path)).stream.servers[0].listens     # type: ignore[union-attr]
    assert [(each.host, each.port, each.port_end) for each in listens] == [
        ("127.0.0.1", 9000, 0), ("127.0.0.1", 9001, 0), ("127.0.0.1", 9002, 0), ("::1", 9005, 0),
        ("", 9010, 0)]
    for written, message in (("127.0.0.1:9002-9000", 'invalid port range in "127.0.0.1:9002-9000"'),
                             ("127.0.0.1:9000-70000", 'invalid port in "127.0.0.1:9000-70000"'),
                             ("127.0.0.1:x-9000", 'invalid port in "127.0.0.1:x-9000" of the "listen"')):
        bad = f"stream {{\n    server {{ listen {written}; proxy_pass 127.0.0.1:1; }}\n}}\n"
        assert error_of(tmp_path, bad).message.startswith(message), written
