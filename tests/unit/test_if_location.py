"""`if` in a location is a nameless location of its own (nginx's ngx_http_rewrite_if): what it sets
serves the request when its condition holds, the rest is inherited from the location, as nginx merges
it; at server level `if` takes the rewrite module's directives only."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.directives import IF_IN_LOCATION, TABLE
from sheer.config.model import Config, Location
from sheer.config.script import If
from sheer.config.table import HTTP_LIF, HTTP_LOCATION
from sheer.core.http.rewrite import Outcome, Request, run
from sheer.core.http.variables import Connection, RequestVariables


def _load(tmp_path: Path, body: str, server: str = "") -> Config:
    path = tmp_path / "lb.conf"
    path.write_text("events {}\nhttp {\n upstream writers { server 127.0.0.1:9001; }\n"
                    " upstream readers { server 127.0.0.1:9002; }\n server {\n  listen 127.0.0.1:8080;\n"
                    + server + "\n" + body + "\n }\n}\n")
    return load(str(path))


def _location(tmp_path: Path, lines: str, server: str = "") -> Location:
    config = _load(tmp_path, "location /t {\n" + lines + "\n}", server)
    assert config.http is not None
    return next(loc for loc in config.http.servers[0].locations if loc.path == "/t")


def _vars(target: str = "/t", method: bytes = b"GET") -> RequestVariables:
    conn = Connection(("192.0.2.1", 40000), ("127.0.0.1", 8080), 1, "h", 1)
    path, _, args = target.partition("?")
    return RequestVariables(conn, method, target, path, args, "HTTP/1.1", [(b"Host", b"example.com")],
                            "example.com", "srv", 10, 0.0)


def _chosen(location: Location, v: RequestVariables) -> int:
    assert location.rewrite is not None
    state = Request(v)
    run(location.rewrite, v, state, lambda test, path: False)
    return state.config


def test_every_if_in_location_directive_sheer_has_is_allowed_there() -> None:
    names = {each.name for each in TABLE if HTTP_LIF in each.contexts}
    assert IF_IN_LOCATION <= names
    assert all(HTTP_LOCATION in each.contexts for each in TABLE if HTTP_LIF in each.contexts)
    assert "proxy_set_header" not in names and "try_files" not in names


def test_proxy_pass_in_if_over_the_location_s_own(tmp_path: Path) -> None:
    location = _location(tmp_path, "proxy_pass http://readers;\n"
                                   "if ($request_method = POST) { proxy_pass http://writers; }")
    assert location.proxy_pass is not None and location.proxy_pass.text == "http://readers"
    inner, = location.if_configs
    assert inner.proxy_pass is not None and inner.proxy_pass.text == "http://writers"
    assert inner.path == "/t" and inner.rewrite is None and inner.static is None
    assert _chosen(location, _vars(method=b"POST")) == 0
    assert _chosen(location, _vars(method=b"GET")) == -1


def test_an_if_without_proxy_pass_proxies_as_its_location(tmp_path: Path) -> None:
    location = _location(tmp_path, "proxy_pass http://readers/x/;\nif ($arg_slow) { limit_rate 10k; }")
    inner, = location.if_configs
    assert inner.proxy_pass is location.proxy_pass and inner.static is None
    assert inner.limit_rate == 10240 and location.limit_rate == 0


def test_add_header_in_if_replaces_the_location_s_lines(tmp_path: Path) -> None:
    location = _location(tmp_path, "add_header X-Loc 1;\nif ($http_origin) { add_header X-If 2 always; }\n"
                                   "return 204;")
    inner, = location.if_configs
    assert [h.name for h in location.add_headers] == ["X-Loc"]
    assert [h.name for h in inner.add_headers] == ["X-If"]


def test_an_if_without_add_header_inherits_the_location_s(tmp_path: Path) -> None:
    location = _location(tmp_path, "add_header X-Loc 1;\nif ($arg_a) { expires -1; }\nreturn 204;",
                         server="add_header X-Server 1;")
    inner, = location.if_configs
    assert [h.name for h in inner.add_headers] == ["X-Loc"]


def test_two_ifs_that_hold_the_last_one_serves(tmp_path: Path) -> None:
    location = _location(tmp_path, "set $true 1;\nif ($true) { add_header X-First 1; }\n"
                                   "if ($true) { add_header X-Second 2; }\nreturn 204;")
    assert [h.name for h in location.if_configs[1].add_headers] == ["X-Second"]
    assert _chosen(location, _vars()) == 1


def test_try_files_is_not_inherited_into_if(tmp_path: Path) -> None:
    location = _location(tmp_path, "root /srv;\ntry_files /file @fallback;\nset $true 1;\nif ($true) { }")
    inner, = location.if_configs
    assert location.static is not None and location.static.try_files is not None
    assert inner.static is not None and inner.static.try_files is None
    assert inner.static.root.text == location.static.root.text


def test_root_and_access_log_off_in_if(tmp_path: Path) -> None:
    location = _location(tmp_path, f"root {tmp_path};\naccess_log {tmp_path}/a.log;\n"
                                   f"if ($arg_a) {{ root {tmp_path}/b; access_log off; }}")
    inner, = location.if_configs
    assert inner.static is not None and inner.static.root.text == f"{tmp_path}/b"
    assert location.access_logs and not inner.access_logs


def test_if_configurations_are_every_location_too(tmp_path: Path) -> None:
    config = _load(tmp_path, "location /t { if ($arg_a) { proxy_pass http://127.0.0.1:9003; } }")
    assert config.http is not None
    locations = config.http.servers[0].locations
    assert len(locations) == 2 and locations[1] is locations[0].if_configs[0]
    assert config.http.servers[0].location_tree == (locations[0],)


def test_a_rewrite_that_relocates_in_an_if_still_marks_it(tmp_path: Path) -> None:
    location = _location(tmp_path, "if ($arg_a) { rewrite ^ /u last; }")
    assert location.rewrite is not None
    op = location.rewrite.ops[0]
    assert isinstance(op, If) and op.config == 0
    v = _vars("/t?a=1")
    state = Request(v)
    assert run(location.rewrite, v, state, lambda test, path: False).outcome is Outcome.RELOCATE


@pytest.mark.parametrize(("lines", "server", "message"), [
    ("if ($arg_a) { proxy_pass http://writers/x; }", "",
     ('lb.conf:9: "proxy_pass" cannot have URI part in location given by regular expression, or inside '
      'named location, or inside "if" statement')),
    ("if ($arg_a) { proxy_set_header X 1; }", "", '"proxy_set_header" directive is not allowed here'),
    ("if ($arg_a) { try_files $uri =404; }", "", '"try_files" directive is not allowed here'),
    ("if ($arg_a) { client_max_body_size 1k; }", "", '"client_max_body_size" directive is not allowed here'),
    ("if ($arg_a) { fastcgi_pass 127.0.0.1:9000; }", "", "fastcgi"),
    ("", "if ($arg_a) { add_header X 1; }", 'lb.conf:7: "add_header" directive is not allowed here'),
    ("", "if ($arg_a) { proxy_pass http://writers; }", '"proxy_pass" directive is not allowed here'),
])
def test_what_if_refuses_gets_nginx_s_messages(tmp_path: Path, lines: str, server: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _location(tmp_path, lines, server)
    assert message in str(caught.value)


def test_server_level_if_has_no_configuration(tmp_path: Path) -> None:
    config = _load(tmp_path, "location /t { return 204; }", server="if ($arg_a) { return 403; }")
    assert config.http is not None
    script = config.http.servers[0].rewrite
    assert script is not None
    op = script.ops[0]
    assert isinstance(op, If) and op.config == -1


# -- limit_except, the other nameless location (ngx_http_core_limit_except) --

def test_limit_except_configuration(tmp_path: Path) -> None:
    location = _location(tmp_path, f"proxy_pass http://readers/x/;\naccess_log {tmp_path}/a.log;\n"
                                   "limit_except get post { allow 127.0.0.1; deny all; access_log off; }")
    assert location.limit_except is not None
    methods, inner = location.limit_except
    assert methods == {b"GET", b"HEAD", b"POST"}
    assert inner.proxy_pass is location.proxy_pass and [rule.allow for rule in inner.access] == [True, False]
    assert location.access == () and location.access_logs and not inner.access_logs
    config = _load(tmp_path, "location /t { limit_except GET { deny all; } }")
    assert config.http is not None and len(config.http.servers[0].locations) == 2


@pytest.mark.parametrize(("lines", "message"), [
    ("limit_except FOO { }", 'lb.conf:9: invalid method "FOO"'),
    ("limit_except GET { }\nlimit_except POST { }", 'lb.conf:10: "limit_except" directive is duplicate'),
    ("limit_except GET { proxy_pass http://writers/x; }", 'or inside "limit_except" block'),
    ("limit_except GET { add_header X 1; }", '"add_header" directive is not allowed here'),
    ("limit_except GET { limit_except POST { } }", '"limit_except" directive is not allowed here'),
])
def test_what_limit_except_refuses(tmp_path: Path, lines: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _location(tmp_path, lines)
    assert message in str(caught.value)
