"""allow/deny: read in the order written (both directives in one list), the innermost level's list,
the first matching rule decides (ngx_http_access_module, ngx_stream_access_module)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.access import AccessRule
from sheer.core.access import allowed


def rules(tmp_path: Path, http: str) -> list[tuple[AccessRule, ...]]:
    path = tmp_path / "sheer.conf"
    path.write_text(f"events {{}}\nhttp {{\n{http}\n}}\n")
    config = load(str(path))
    assert config.http is not None
    return [location.access for location in config.http.servers[0].locations]


def test_order_across_allow_and_deny_and_first_match_decides(tmp_path: Path) -> None:
    [own] = rules(tmp_path, """server { listen 127.0.0.1:80;
        location / { allow 192.0.2.1; deny 192.0.2.0/24; allow 2001:db8::/32; deny all; return 204; } }""")
    assert [r.allow for r in own] == [True, False, True, False]
    assert allowed(own, "192.0.2.1")
    assert not allowed(own, "192.0.2.2")
    assert allowed(own, "2001:db8::5")
    assert not allowed(own, "198.51.100.1")
    assert allowed(own, "::ffff:192.0.2.1")        # IPv4-mapped: checked against the IPv4 rules
    assert not allowed(own, "::ffff:192.0.2.9")


def test_no_rule_matching_lets_in(tmp_path: Path) -> None:
    [own] = rules(tmp_path, """server { listen 127.0.0.1:80;
        location / { deny 10.0.0.0/8; return 204; } }""")
    assert allowed(own, "127.0.0.1") and not allowed(own, "10.1.2.3")
    assert allowed((), "10.1.2.3")


def test_a_level_with_rules_replaces_the_outer_ones(tmp_path: Path) -> None:
    outer, inner, plain = rules(tmp_path, """deny 10.0.0.0/8;
        server { listen 127.0.0.1:80;
            location /a { return 204; }
            location /b { allow 10.0.0.1; deny all; return 204; }
            location /c { return 204; } }""")
    assert [r.allow for r in outer] == [False] and outer == plain
    assert allowed(inner, "10.0.0.1") and not allowed(inner, "127.0.0.1")


def test_host_bits_are_ignored_as_nginx_does(tmp_path: Path) -> None:
    [own] = rules(tmp_path, """server { listen 127.0.0.1:80; location / { deny 10.0.0.1/8; return 204; } }""")
    assert not allowed(own, "10.200.0.1")


@pytest.mark.parametrize("arg, message", [
    ("10.0.0.300", 'invalid parameter "10.0.0.300"'),
    ("example.com", 'invalid parameter "example.com"'),
    ("unix:/run/a.sock", 'invalid parameter "unix:/run/a.sock"'),
])
def test_bad_values(tmp_path: Path, arg: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message + r".*|.*sheer.conf:3: " + message):
        rules(tmp_path, f"server {{ listen 127.0.0.1:80;\n location / {{ deny {arg}; return 204; }} }}")


def test_stream_server_rules(tmp_path: Path) -> None:
    path = tmp_path / "sheer.conf"
    path.write_text("events {}\nstream { deny 192.0.2.0/24;\n server { listen 127.0.0.1:9000; allow all; "
                    "return x; }\n server { listen 127.0.0.1:9001; return y; } }\n")
    config = load(str(path))
    assert config.stream is not None
    first, second = config.stream.servers
    assert allowed(first.access, "192.0.2.1") and not allowed(second.access, "192.0.2.1")



def test_unix_rules_match_unix_clients_only(tmp_path: Path) -> None:
    """nginx: `allow unix:` is a rule of its own family; `all` covers unix-domain clients too."""
    [own] = rules(tmp_path, "server { listen 80; location / { allow unix:; deny all; return 204; } }")
    assert allowed(own, "unix:") and not allowed(own, "127.0.0.1")
    [own] = rules(tmp_path, "server { listen 127.0.0.1:80; location / { deny unix:; return 204; } }")
    assert not allowed(own, "unix:") and allowed(own, "10.0.0.1")
    [own] = rules(tmp_path, "server { listen 80; location / { allow 127.0.0.1; deny all; return 204; } }")
    assert not allowed(own, "unix:")


def test_limit_except_rules_for_the_other_methods(tmp_path: Path) -> None:
    path = tmp_path / "sheer.conf"
    path.write_text("events {}\nhttp { deny 10.0.0.0/8;\n server { listen 127.0.0.1:80;\n"
                    " location /a { limit_except get { allow 192.0.2.1; deny all; } return 204; }\n"
                    " location /b { limit_except POST PUT { } location /b/c { return 204; } } } }\n")
    config = load(str(path))
    assert config.http is not None
    first = {}
    for loc in config.http.servers[0].locations:      # a location before its nameless configurations
        first.setdefault(loc.path, loc)
    a, b = first["/a"], first["/b"]
    assert a.limit_except is not None and a.limit_except[0] == {b"GET", b"HEAD"}
    assert [rule.allow for rule in a.limit_except[1].access] == [True, False]
    assert b.limit_except is not None and b.limit_except[0] == {b"POST", b"PUT"}
    assert b.limit_except[1].access == b.access and [rule.allow for rule in b.access] == [False]  # inherited


@pytest.mark.parametrize("block, message", [
    ("limit_except FOO { }", 'sheer.conf:4: invalid method "FOO"'),
    ("limit_except GET { } limit_except POST { }", 'sheer.conf:4: "limit_except" directive is duplicate'),
    ("limit_except GET { return 403; }", 'sheer.conf:4: "return" directive is not allowed here'),
    ("limit_except GET { proxy_pass http://127.0.0.1:9/b; }",
     'sheer.conf:4: "proxy_pass" cannot have URI part in location given by regular expression'),
])
def test_limit_except_refused_as_nginx(tmp_path: Path, block: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        rules(tmp_path, f"server {{ listen 127.0.0.1:80;\n location / {{ {block} return 204; }} }}")
