"""The balancing directives: spellings, the model they build, nginx's errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_config_errors import assert_error, stream

from sheer.config import Config, load
from sheer.config.model import Upstream

SERVER = "server { listen 1000; proxy_pass u; }"


def upstream_of(tmp_path: Path, *lines: str, http: bool = False) -> Upstream:
    path = tmp_path / "sheer.conf"
    if http:
        body = "\n".join(lines)
        path.write_text("http {\n upstream u {\n" + body + "\n }\n server { listen 127.0.0.1:1080; "
                        "location / { proxy_pass http://u; } }\n}\n")
    else:
        path.write_text(stream("    upstream u {", *lines, "    }", SERVER))
    config: Config = load(str(path))
    block = config.http if http else config.stream
    assert block is not None
    return block.upstreams[0]


@pytest.mark.parametrize(("line", "method", "key"), [
    ("", "round_robin", None),
    ("least_conn;", "least_conn", None),
    ("hash $remote_addr;", "hash", "$remote_addr"),
    ("hash $remote_addr$server_port consistent;", "consistent", "$remote_addr$server_port"),
    ("hash $remote_addr maglev;", "maglev", "$remote_addr"),
    ("random;", "random", None),
    ("random two;", "random_two", None),
    ("random two least_conn;", "random_two", None),
])
def test_stream_methods(tmp_path: Path, line: str, method: str, key: str | None) -> None:
    up = upstream_of(tmp_path, line, "server 127.0.0.1:1 weight=2 max_conns=3;", "server 127.0.0.2:1 down;")
    assert up.balance.method == method
    assert (up.balance.key.text if up.balance.key else None) == key
    assert up.servers[0].text == "127.0.0.1:1"


def test_http_ip_hash_and_hash(tmp_path: Path) -> None:
    up = upstream_of(tmp_path, "ip_hash;", "server 127.0.0.1;", "server 127.0.0.2;", http=True)
    assert up.balance.method == "ip_hash"
    assert up.servers[0].text == "127.0.0.1" and up.servers[0].port == 80   # ketama hashes the text
    (tmp_path / "again").mkdir()
    up = upstream_of(tmp_path / "again", "hash $request_uri consistent;", "server 127.0.0.1;", http=True)
    assert up.balance.method == "consistent"


def test_least_conn_allows_backup(tmp_path: Path) -> None:
    up = upstream_of(tmp_path, "least_conn;", "server 127.0.0.1:1;", "server 127.0.0.2:1 backup;")
    assert up.servers[1].backup


@pytest.mark.parametrize(("lines", "line", "message"), [
    (["hash $remote_addr;", "server 127.0.0.1:1;", "server 127.0.0.2:1 backup;"], 5,
     'balancing method does not support parameter "backup"'),
    (["server 127.0.0.2:1 backup;", "server 127.0.0.1:1;", "random;"], 3,
     'balancing method does not support parameter "backup"'),
    (["server 127.0.0.1:1;", "server 127.0.0.2:1 backup;", "hash $remote_addr maglev;"], 4,
     'balancing method does not support parameter "backup"'),
    (["hash $remote_addr ketama;", "server 127.0.0.1:1;"], 3, 'invalid parameter "ketama"'),
    (["hash;", "server 127.0.0.1:1;"], 3, 'invalid number of arguments in "hash" directive'),
    (["hash $nope;", "server 127.0.0.1:1;"], 3, 'unknown "nope" variable'),
    (["random three;", "server 127.0.0.1:1;"], 3, 'invalid parameter "three"'),
    (["random two most_conn;", "server 127.0.0.1:1;"], 3, 'invalid parameter "most_conn"'),
    (["least_conn x;", "server 127.0.0.1:1;"], 3, 'invalid number of arguments in "least_conn" directive'),
    (["least_conn;", "hash $remote_addr;", "server 127.0.0.1:1;"], 4,
     'load balancing method redefined ("least_conn" and "hash")'),
    (["ip_hash;", "server 127.0.0.1:1;"], 3, '"ip_hash" directive is not allowed here'),
    (["least_conn;", "least_conn;", "server 127.0.0.1:1;"], 4, '"least_conn" directive is duplicate'),
])
def test_errors(tmp_path: Path, lines: list[str], line: int, message: str) -> None:
    assert_error(tmp_path,
                 stream("    upstream u {", *("        " + text for text in lines), "    }", SERVER),
                 line, message)
