"""A request's route (server, location, plan) is remembered for its host and URI when nothing else
decided it (sheer.io.http.dispatch): the same answers as without the memo, for locations with
captures and limit_except too, which are never remembered."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from sheer.config import load
from sheer.io.http.client import ClientConnection
from sheer.io.http.request import Request
from sheer.io.http.service import HttpService
from sheer.io.logs import ErrorLogger
from sheer.runtime.context import worker_context

CONF = """error_log /dev/null;
http { access_log off; upstream u { server 127.0.0.21:9; }
 server { listen 127.0.0.1:18398; server_name a.test;
  location / { proxy_pass http://u; }
  location /api/ { proxy_pass http://u; }
  location ~ ^/re/(.*)$ { proxy_pass http://u/$1; }
  location /limited/ { proxy_pass http://u; limit_except GET { deny all; } } }
 server { listen 127.0.0.1:18398; server_name b.test; location / { proxy_pass http://u; } } }
"""


class Transport:
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 18398)}.get(name, default)

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def connection(tmp_path: Path, seen: list[Request]) -> ClientConnection:
    conf = tmp_path / "sheer.conf"
    conf.write_text(CONF)
    config = load(str(conf), prefix=str(tmp_path))
    ctx = worker_context(config, ErrorLogger.__new__(ErrorLogger))
    assert config.http is not None
    service: Any = HttpService(socket.socket(), list(config.http.servers), ctx)
    loop = asyncio.new_event_loop()
    service.loop = loop

    async def slots() -> Any:
        return ctx.slots()

    service.slots = loop.run_until_complete(slots())
    loop.close()

    def proxy(conn: ClientConnection, request: Request, plan: Any) -> None:
        seen.append(request)
        conn.current = None

    service.proxy = proxy
    service.loop = type("Loop", (), {"time": lambda self: 0.0, "create_task": lambda self, coro: None,
                                     "call_at": lambda self, when, callback: None})()
    conn = ClientConnection(service)
    conn.connection_made(Transport())
    return conn


def test_routes_are_remembered_only_when_host_and_uri_decide(tmp_path: Path) -> None:
    seen: list[Request] = []
    conn = connection(tmp_path, seen)
    for host, target in [("a.test", "/api/x"), ("a.test", "/api/x"), ("b.test", "/api/x"), ("A.test", "/y"),
                         ("a.test", "/re/one"), ("a.test", "/re/two"), ("a.test", "/re/one"),
                         ("a.test", "/limited/z"), ("a.test", "/limited/z")]:
        conn.data_received(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    paths = [(r.vhost.name if r.vhost else None, r.plan.location.path if r.plan and r.plan.location else None)
             for r in seen]
    assert paths == [("a.test", "/api/"), ("a.test", "/api/"), ("b.test", "/"), ("a.test", "/"),
                     ("a.test", "^/re/(.*)$"), ("a.test", "^/re/(.*)$"), ("a.test", "^/re/(.*)$"),
                     ("a.test", "/limited/"), ("a.test", "/limited/")]
    assert [r.vars.variable("1") for r in seen[4:7] if r.vars] == ["one", "two", "one"]
    routes = conn.site.routes
    assert set(routes) == {("a.test", "/api/x"), ("b.test", "/api/x"), ("a.test", "/y")}


def test_the_memo_is_bounded(tmp_path: Path) -> None:
    seen: list[Request] = []
    conn = connection(tmp_path, seen)
    for number in range(600):
        conn.data_received(f"GET /api/{number} HTTP/1.1\r\nHost: a.test\r\n\r\n".encode())
    conn.data_received(b"GET /api/" + b"x" * 300 + b" HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert len(seen) == 601
    assert 0 < len(conn.site.routes) <= 512
    assert not any(len(uri) > 256 for _, uri in conn.site.routes)
