"""`map`, http and stream: how a key is looked up, captures, hostnames, volatile, and nginx's errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import Config, ConfigError, load
from sheer.core.maps import lookup, tables_of


class Vars:
    def __init__(self, **values: str) -> None:
        self.values = values

    def variable(self, name: str) -> str:
        return self.values.get(name, "")


def load_text(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "lb.conf"
    path.write_text(text)
    return load(str(path))


def http_maps(tmp_path: Path, maps: str) -> Config:
    return load_text(tmp_path, "http {\n" + maps + "\nserver { listen 127.0.0.1:8080; "
                     "location / { return 200 $mapped; } }\n}\n")


def value(config: Config, name: str, **variables: str) -> str:
    assert config.http is not None
    found = lookup(tables_of(config.http.maps), name, Vars(**variables), {})
    assert found is not None
    return found


def test_exact_regex_default_in_nginx_order(tmp_path: Path) -> None:
    config = http_maps(tmp_path, r"""
        map $uri $mapped {
            default              "none";
            /exact               "exact";
            \default             "the key default";
            ~^/exact/(?<rest>.*) "regex $rest";
            ~*^/CASE/(\d+)$      "caseless $1 of $host";
            ~^/(.*)$             "any $1";
        }""")
    assert value(config, "mapped", uri="/exact") == "exact"
    assert value(config, "mapped", uri="/EXACT") == "exact"          # exact keys are caseless
    assert value(config, "mapped", uri="default") == "the key default"
    assert value(config, "mapped", uri="/exact/a/b") == "regex a/b"
    assert value(config, "mapped", uri="/case/42", host="h") == "caseless 42 of h"
    assert value(config, "mapped", uri="/z") == "any z"
    assert value(config, "mapped", uri="nothing") == "none"


def test_no_default_is_empty_and_composite_strings(tmp_path: Path) -> None:
    config = http_maps(tmp_path, "map $host:$server_port $mapped { a:80 yes; }")
    assert value(config, "mapped", host="a", server_port="80") == "yes"
    assert value(config, "mapped", host="b", server_port="80") == ""


def test_hostnames(tmp_path: Path) -> None:
    config = http_maps(tmp_path, """
        map $host $mapped {
            hostnames;
            default            other;
            example.com        exact;
            *.example.com      head;
            *.a.example.com    longer-head;
            www.example.*      tail;
            .example.org       both;
        }""")
    assert value(config, "mapped", host="example.com.") == "exact"    # a trailing dot goes
    assert value(config, "mapped", host="b.example.com") == "head"
    assert value(config, "mapped", host="x.a.example.com") == "longer-head"
    assert value(config, "mapped", host="www.example.net") == "tail"
    assert value(config, "mapped", host="example.org") == "both"
    assert value(config, "mapped", host="x.example.org") == "both"
    assert value(config, "mapped", host="www.test") == "other"


def test_values_are_kept_unless_volatile(tmp_path: Path) -> None:
    config = http_maps(tmp_path, "map $uri $mapped { default $uri; }\n"
                                 "map $uri $fresh { volatile; default $uri; }")
    assert config.http is not None
    tables, cache = tables_of(config.http.maps), {}
    source = Vars(uri="/one")
    assert lookup(tables, "mapped", source, cache) == "/one"
    assert lookup(tables, "fresh", source, cache) == "/one"
    source.values["uri"] = "/two"
    assert lookup(tables, "mapped", source, cache) == "/one"
    assert lookup(tables, "fresh", source, cache) == "/two"


def test_a_map_variable_may_be_used_before_its_map_and_in_stream(tmp_path: Path) -> None:
    config = load_text(tmp_path, """
        stream {
            server { listen 127.0.0.1:1000; return $upstream_name; }
            map $server_port $upstream_name { 1000 thousand; default other; }
        }""")
    assert config.stream is not None and config.stream.maps[0].variable == "upstream_name"
    assert lookup(tables_of(config.stream.maps), "upstream_name", Vars(server_port="1000"), {}) == "thousand"


def test_a_map_of_http_is_not_a_variable_of_stream(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, """
        http { map $uri $only_http { default x; } server { listen 127.0.0.1:8080; return 200; } }
        stream { server { listen 127.0.0.1:1000; return $only_http; } }""")
    assert info.value.message == 'unknown "only_http" variable'


@pytest.mark.parametrize(("maps", "message"), [
    ("map $uri $mapped { default a; default b; }", "duplicate default map parameter"),
    ("map $uri $mapped { /a 1; /A 2; }", 'conflicting parameter "/a"'),
    ("map $uri $mapped { /a 1 2; }", "invalid number of the map parameters"),
    ("map $uri $mapped { ~^(x 1; }",
     'regular expression "^(x" does not compile: missing ), unterminated subpattern at position 1'),
    ("map $uri mapped { default 1; }", 'invalid variable name "mapped"'),
    ("map $uri $mapped { default 1; }\nmap $args $mapped { default 2; }", 'the duplicate "mapped" variable'),
    ("map $uri $host { default 1; }\nmap $args $mapped { default 2; }", 'the duplicate "host" variable'),
    ("map $uri $mapped { default $nope; }", 'unknown "nope" variable'),
])
def test_nginx_errors(tmp_path: Path, maps: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        http_maps(tmp_path, maps)
    assert info.value.message == message and info.value.source is not None
