"""The article's configs load; nginx's defaults; inheritance; include; -g directives."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.model import Config, Location, StreamServer
from sheer.config.template import Var
from sheer.lab import configs as article


def write(tmp_path: Path, text: str, name: str = "sheer.conf") -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def load_text(tmp_path: Path, text: str, **kw: str) -> Config:
    return load(write(tmp_path, text), **kw)


def stream_server(config: Config, index: int = 0) -> StreamServer:
    assert config.stream is not None
    return config.stream.servers[index]


def location(config: Config, server: int = 0, index: int = 0) -> Location:
    assert config.http is not None
    return config.http.servers[server].locations[index]


def headers(loc: Location) -> dict[str, str]:
    return {name: template.text for name, template in loc.proxy_set_header}


# --- the article's configurations ---------------------------------------------------------

ADMIN_GUIDE_DNS = """
stream {
    upstream dns_upstreams {
        server 192.168.136.130:53;
        server 192.168.136.131:53;
    }

    server {
        listen 53 udp;
        proxy_pass dns_upstreams;
        proxy_timeout 1s;
        proxy_responses 1;
        error_log logs/dns.log;
    }
}
"""

HELLO = "Hello from $hostname. You connected from $remote_addr:$remote_port to $server_addr:$server_port\\n"
UPSTREAM_TEST_PAGE = f"""
http {{
server {{
    listen 80;

    location / {{
        return 200 "{HELLO}";
    }}
}}
}}
"""


def test_article_http_demo_without_proxy_bind(tmp_path: Path) -> None:
    config = load_text(tmp_path, article.HEADER + article.http_block())
    assert config.user == ("root", None)
    assert config.worker_processes == 1
    assert config.worker_connections == 1024
    loc = location(config)
    assert loc.path == "/" and not loc.exact
    assert loc.proxy_bind is None
    assert loc.proxy_pass is not None
    upstream = loc.proxy_pass.upstream
    assert upstream.name == "http_upstreams"
    # http upstream servers without a port get 80
    assert [s.name for s in upstream.servers] == ["172.16.0.11:80", "172.16.0.12:80",
                                                  "172.16.0.13:80", "172.16.0.14:80"]
    assert config.http is not None and config.http.servers[0].listens[0].port == 80


def test_article_udp_dns(tmp_path: Path) -> None:
    config = load_text(tmp_path, article.HEADER + article.dns_block())
    server = stream_server(config)
    assert server.udp
    assert server.listens[0].port == 53 and server.listens[0].host == ""
    assert server.proxy_responses == 1
    assert server.proxy_timeout == 1.0
    assert server.upstream is not None and server.upstream.name == "dns_upstreams"
    assert [s.name for s in server.upstream.servers] == [f"172.16.0.{n}:53" for n in (11, 12, 13, 14)]
    assert not server.dsr


def test_admin_guide_dns_with_relative_error_log(tmp_path: Path) -> None:
    config = load_text(tmp_path, ADMIN_GUIDE_DNS)
    server = stream_server(config)
    assert server.error_log is not None
    assert server.error_log.path == str(tmp_path / "logs" / "dns.log")
    assert server.error_log.level == "error"


def test_upstream_test_page(tmp_path: Path) -> None:
    loc = location(load_text(tmp_path, UPSTREAM_TEST_PAGE))
    assert loc.return_ is not None and loc.return_.code == 200
    assert loc.return_.text is not None
    assert loc.return_.text.variables == {"hostname", "remote_addr", "remote_port", "server_addr",
                                          "server_port"}
    assert loc.return_.text.text.endswith("\n")  # nginx's \n escape


def test_article_transparency_variant(tmp_path: Path) -> None:
    config = load_text(tmp_path, article.TRANSPARENT)
    loc = location(config)
    assert loc.proxy_bind is not None
    assert loc.proxy_bind.transparent and loc.proxy_bind.client_address and not loc.proxy_bind.client_port
    server = stream_server(config)
    assert server.proxy_bind is not None and server.proxy_bind.transparent
    assert server.proxy_bind.address.parts == (Var("remote_addr"),)
    assert not server.dsr  # proxy_responses 1: sheer still expects the answer


def test_article_dsr_variant(tmp_path: Path) -> None:
    server = stream_server(load_text(tmp_path, article.DSR))
    assert server.proxy_responses == 0
    assert server.proxy_bind is not None and server.proxy_bind.client_port
    assert server.dsr


def test_proxy_bind_off_and_literal(tmp_path: Path) -> None:
    config = load_text(tmp_path, """stream {
        proxy_bind 127.0.0.2;
        server { listen 1000; proxy_pass 127.0.0.1:1; }
        server { listen 1001; proxy_bind off; proxy_pass 127.0.0.1:1; }
    }""")
    first, second = stream_server(config, 0), stream_server(config, 1)
    assert first.proxy_bind is not None and first.proxy_bind.address.is_literal
    assert not first.proxy_bind.transparent
    assert second.proxy_bind is None


# --- nginx's defaults ---------------------------------------------------------------------

def test_stream_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, """stream {
        upstream u { server 127.0.0.1:1; }
        server { listen 1000; proxy_pass u; }
    }""")
    server = stream_server(config)
    assert server.proxy_timeout == 600.0            # 10m
    assert server.proxy_connect_timeout == 60.0     # 60s
    assert server.proxy_responses is None           # unlimited
    assert server.proxy_requests == 0
    assert server.proxy_next_upstream is True
    assert server.proxy_next_upstream_tries == 0
    assert server.proxy_next_upstream_timeout == 0.0
    assert server.proxy_half_close is False         # the first EOF ends the session
    assert not server.udp
    assert server.upstream is not None
    peer = server.upstream.servers[0]
    assert (peer.weight, peer.max_fails, peer.fail_timeout, peer.backup, peer.down, peer.max_conns) == \
        (1, 1, 10.0, False, False, 0)
    assert config.worker_processes == 1 and config.worker_connections == 512
    assert config.error_log.path == "stderr" and config.pid is None and config.daemon is False


def test_proxy_half_close_is_inherited_and_checked(tmp_path: Path) -> None:
    config = load_text(tmp_path, """stream {
        proxy_half_close on;
        server { listen 1000; proxy_pass 127.0.0.1:1; }
        server { listen 1001; proxy_half_close off; proxy_pass 127.0.0.1:1; }
    }""")
    assert stream_server(config, 0).proxy_half_close is True
    assert stream_server(config, 1).proxy_half_close is False
    with pytest.raises(ConfigError, match='"proxy_half_close"'):
        load_text(tmp_path,
                  "stream { server { listen 1000; proxy_half_close maybe; proxy_pass 127.0.0.1:1; } }")


def test_http_defaults(tmp_path: Path) -> None:
    text = "http { server { listen 8080; location / { proxy_pass http://127.0.0.1:81; } } }"
    loc = location(load_text(tmp_path, text))
    assert loc.proxy_http_version == "1.0"
    assert headers(loc) == {"Host": "$proxy_host", "Connection": "close"}
    assert (loc.proxy_connect_timeout, loc.proxy_read_timeout, loc.proxy_send_timeout) == (60.0, 60.0, 60.0)
    assert loc.proxy_next_upstream == frozenset({"error", "timeout"})
    assert loc.proxy_pass is not None and loc.proxy_pass.upstream.implicit


def test_http_listen_without_port_is_80(tmp_path: Path) -> None:
    config = load_text(tmp_path, "http { server { listen 127.0.0.2; return 200; } server { return 204; } }")
    assert config.http is not None
    assert [(s.listens[0].host, s.listens[0].port)
            for s in config.http.servers] == [("127.0.0.2", 80), ("", 80)]


def test_upstream_server_parameters(tmp_path: Path) -> None:
    config = load_text(tmp_path, """stream {
        upstream u {
            server 127.0.0.11:53 weight=5 max_fails=3 fail_timeout=30s max_conns=7;
            server 127.0.0.12:53 backup;
            server 127.0.0.13:53 down;
            server [::1]:53 max_fails=0;
        }
        server { listen 1000 udp; proxy_pass u; }
    }""")
    assert config.stream is not None
    a, b, c, d = config.stream.upstreams[0].servers
    assert (a.weight, a.max_fails, a.fail_timeout, a.max_conns) == (5, 3, 30.0, 7)
    assert b.backup and not b.down and c.down and not c.backup
    assert d.host == "::1" and d.name == "[::1]:53" and d.max_fails == 0


def test_worker_processes_auto_and_daemon_pid(tmp_path: Path) -> None:
    config = load_text(tmp_path, """worker_processes auto; daemon off; pid run/sheer.pid;
        stream { server { listen 1000; return "x"; } }""")
    assert config.worker_processes is None and config.workers >= 1
    assert config.pid == str(tmp_path / "run" / "sheer.pid")


# --- inheritance ----------------------------------------------------------------------------

def test_stream_inheritance(tmp_path: Path) -> None:
    config = load_text(tmp_path, """stream {
        proxy_timeout 30s; proxy_connect_timeout 2s; proxy_responses 2;
        server { listen 1000 udp; proxy_pass 127.0.0.1:1; }
        server { listen 1001 udp; proxy_timeout 1s; proxy_responses 0; proxy_pass 127.0.0.1:1; }
    }""")
    first, second = stream_server(config, 0), stream_server(config, 1)
    assert (first.proxy_timeout, first.proxy_connect_timeout, first.proxy_responses) == (30.0, 2.0, 2)
    assert (second.proxy_timeout, second.proxy_connect_timeout, second.proxy_responses) == (1.0, 2.0, 0)


def test_http_inheritance_and_proxy_set_header_replaced_per_level(tmp_path: Path) -> None:
    config = load_text(tmp_path, """http {
        proxy_http_version 1.1;
        proxy_read_timeout 5s;
        proxy_set_header X-Outer outer;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        server {
            listen 8080;
            proxy_read_timeout 6s;
            location /inherit { proxy_pass http://127.0.0.1:81; }
            location /own {
                proxy_set_header X-Inner inner;
                proxy_set_header Host $host;
                proxy_read_timeout 7s;
                proxy_pass http://127.0.0.1:81;
            }
            location /clear { proxy_set_header Connection ""; proxy_pass http://127.0.0.1:81; }
        }
        server {
            listen 8081;
            proxy_set_header X-Server server;
            location / { proxy_http_version 1.0; proxy_pass http://127.0.0.1:81; }
        }
    }""")
    inherit, own, clear = (location(config, 0, i) for i in range(3))
    assert inherit.proxy_http_version == "1.1" and inherit.proxy_read_timeout == 6.0
    assert headers(inherit) == {"X-Outer": "outer", "X-Forwarded-For": "$proxy_add_x_forwarded_for",
                                "Host": "$proxy_host", "Connection": "close"}
    # the location's own list replaces the http-level one wholesale; defaults stay unless overridden
    assert own.proxy_read_timeout == 7.0
    assert headers(own) == {"X-Inner": "inner", "Host": "$host", "Connection": "close"}
    assert headers(clear) == {"Connection": "", "Host": "$proxy_host"}
    other = location(config, 1, 0)
    assert other.proxy_http_version == "1.0" and other.proxy_read_timeout == 5.0
    assert headers(other) == {"X-Server": "server", "Host": "$proxy_host", "Connection": "close"}


# --- include and -g -------------------------------------------------------------------------

def test_include_glob_and_relative_paths(tmp_path: Path) -> None:
    write(tmp_path, "upstream b { server 127.0.0.12:53; }", "conf.d/b.conf")
    write(tmp_path, "upstream a { server 127.0.0.11:53; }", "conf.d/a.conf")
    write(tmp_path, "not read", "conf.d/a.txt")
    # nested includes are relative to the main file's directory, as in nginx
    write(tmp_path, "include servers/inner.conf;", "servers/outer.conf")
    write(tmp_path, "server { listen 1000 udp; proxy_pass a; }\nserver { listen 1001 udp; proxy_pass b; }",
          "servers/inner.conf")
    write(tmp_path, "include conf.d/none-*.conf;", "empty.conf")
    main = write(tmp_path, "include empty.conf;\nstream {\n    include conf.d/*.conf;\n"
                           "    include servers/outer.conf;\n}\n")
    config = load(main)
    assert config.stream is not None
    assert [u.name for u in config.stream.upstreams] == ["a", "b"]  # sorted glob order
    assert [s.upstream.name for s in config.stream.servers if s.upstream] == ["a", "b"]
    assert config.files[0] == main
    assert set(config.files) == {main, str(tmp_path / "empty.conf"), str(tmp_path / "conf.d/a.conf"),
                                 str(tmp_path / "conf.d/b.conf"), str(tmp_path / "servers/outer.conf"),
                                 str(tmp_path / "servers/inner.conf")}


def test_include_absolute_path(tmp_path: Path) -> None:
    other = write(tmp_path, "worker_processes 3;", "elsewhere/main.inc")
    config = load_text(tmp_path / "sub", f"include {other};\nstream {{ server {{ listen 1; return x; }} }}")
    assert config.worker_processes == 3


def test_global_directives(tmp_path: Path) -> None:
    path = write(tmp_path, "stream { server { listen 1000; return x; } }")
    config = load(path, global_directives="worker_processes 4; pid sheer.pid;")
    assert config.worker_processes == 4
    assert config.pid == str(tmp_path / "sheer.pid")


def test_global_directive_duplicate_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "worker_processes 2;\nstream { server { listen 1000; return x; } }")
    with pytest.raises(ConfigError, match='"worker_processes" directive is duplicate'):
        load(path, global_directives="worker_processes 4;")


def test_prefix_for_relative_paths(tmp_path: Path) -> None:
    path = write(tmp_path,
                 "pid sheer.pid; error_log logs/error.log info;\nstream { server { listen 1; return x; } }")
    config = load(path, prefix="/var/lib/sheer")
    assert config.pid == "/var/lib/sheer/sheer.pid"
    assert config.error_log.path == "/var/lib/sheer/logs/error.log" and config.error_log.level == "info"


def test_config_model_is_frozen(tmp_path: Path) -> None:
    config = load_text(tmp_path, "stream { server { listen 1; return x; } }")
    with pytest.raises(AttributeError):
        config.worker_processes = 3  # type: ignore[misc]
