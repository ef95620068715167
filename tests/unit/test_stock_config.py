"""Debian's stock nginx.conf and its default site load as they are (tests/unit/data/debian-nginx), and
sheer says, line by line, what it does not do of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sheer.config import ConfigError, load

STOCK = Path(__file__).parent / "data" / "debian-nginx"


def stock_tree(tmp_path: Path) -> Path:
    """The stock files with /etc/nginx/ leading to a copy of them (nothing else changed)."""
    etc = tmp_path / "etc" / "nginx"
    shutil.copytree(STOCK, etc)
    (etc / "sites-enabled").mkdir()
    (etc / "sites-enabled" / "default").write_text((etc / "sites-available" / "default").read_text())
    (etc / "conf.d").mkdir()
    conf = etc / "nginx.conf"
    conf.write_text(conf.read_text().replace("/etc/nginx/", f"{etc}/"))
    return conf


def test_the_stock_configuration_loads(tmp_path: Path) -> None:
    conf = stock_tree(tmp_path)
    config = load(str(conf))
    assert config.user == ("www-data", None) and config.worker_processes is None
    assert config.pid == "/run/nginx.pid" and config.error_log.path == "/var/log/nginx/error.log"
    assert config.worker_connections == 768
    assert config.http is not None and len(config.http.servers) == 1
    server = config.http.servers[0]
    assert {(listen.host, listen.port) for listen in server.listens} == {("", 80), ("::", 80)}
    assert server.server_names == ("_",)
    location = server.locations[0]
    assert location.path == "/" and location.return_ is None and location.static is not None
    assert location.static.root.text == "/var/www/html" and location.static.try_files is not None
    assert location.static.type_of("/a.css") == "text/css"
    assert location.access_logs[0].path == "/var/log/nginx/access.log"


def test_what_sheer_drops_from_it_is_said(tmp_path: Path) -> None:
    conf = stock_tree(tmp_path)
    etc = conf.parent
    notices = load(str(conf)).notices
    said = {(level, text.split(": ", 1)[0], text.split('"')[1] if '"' in text else "")
            for level, text in notices}
    assert ("warn", f"{etc}/modules-enabled/50-mod-http-echo.conf:1", "load_module") in said
    assert ("notice", f"{etc}/modules-enabled/50-mod-stream.conf:1", "load_module") in said
    assert ("notice", f"{conf}:19", "tcp_nopush") in said
    assert ("notice", f"{conf}:20", "types_hash_max_size") in said
    assert not any(name.startswith("ssl_") for _, _, name in said)    # TLS reads them (issue 14)
    assert not any(name.startswith("gzip") for _, _, name in said)    # gzip is done (issue 13g)
    # the static files: sendfile, types, default_type, index, try_files are sheer's now (nothing said)
    assert not {"sendfile", "types", "default_type", "index", "try_files"} & {name for _, _, name in said}
    assert len(notices) == 4, notices      # ssl_protocols, ssl_prefer_server_ciphers: TLS reads them


def test_server_tokens_checked(tmp_path: Path) -> None:
    path = tmp_path / "sheer.conf"
    path.write_text("events {}\nhttp { server_tokens off; server { listen 127.0.0.1:80; server_tokens build; "
                    "location / { server_tokens on; return 204; } } }\n")
    assert load(str(path)).http is not None
    path.write_text("events {}\nhttp {\n server_tokens maybe; }\n")
    with pytest.raises(ConfigError, match=r'sheer.conf:3: invalid value "maybe"'):
        load(str(path))


def test_proxy_buffering_directives_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "sheer.conf"
    path.write_text("events {}\nhttp { proxy_buffering off; proxy_request_buffering off;\n"
                    " proxy_buffer_size 4k;"
                    " proxy_buffers 8 16k; proxy_busy_buffers_size 32k; proxy_max_temp_file_size 0;\n"
                    " server { listen 127.0.0.1:80; location / { proxy_buffering on; return 204; } } }\n")
    assert load(str(path)).http is not None
    path.write_text("events {}\nhttp {\n proxy_buffers 8; }\n")
    with pytest.raises(ConfigError, match=r'sheer.conf:3: invalid number of arguments in "proxy_buffers"'):
        load(str(path))
    path.write_text("events {}\nhttp {\n proxy_buffering maybe; }\n")
    with pytest.raises(ConfigError, match=r"sheer.conf:3: .*proxy_buffering"):
        load(str(path))
