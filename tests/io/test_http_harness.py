"""In-process HttpService instances on a uvloop loop in a background thread, for the http io tests."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop

import sheer.config
from sheer.config.model import Config, HttpServer
from sheer.io.http import HttpService
from sheer.io.logs import ErrorLogger
from sheer.runtime.context import WorkerContext

T = TypeVar("T")
pytestmark = pytest.mark.io


def listening(host: str, port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(511)
    sock.setblocking(False)
    return sock


def free_port(host: str) -> int:
    """A port nobody listens on (connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sockets: dict[tuple[str, int], socket.socket] = {}
        self.services: list[HttpService] = []
        self.count = 0

    def listen(self, host: str, port: int = 0) -> int:
        sock = listening(host, port)
        port = sock.getsockname()[1]
        self.sockets[(host, port)] = sock
        return int(port)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 5.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve(self, http_block: str) -> dict[tuple[str, int], HttpService]:
        """Run every server of `http { ... }` on the sockets made by listen()."""
        self.count += 1
        path = self.tmp / f"sheer{self.count}.conf"
        path.write_text(f"error_log {self.tmp}/error.log info;\nhttp {{\n{http_block}\n}}\n")
        config = sheer.config.load(str(path))
        assert config.http is not None
        groups: dict[tuple[str, int], list[HttpServer]] = {}
        for server in config.http.servers:
            for listen in server.listens:
                groups.setdefault((listen.host, listen.port), []).append(server)
        ctx = WorkerContext(config, ErrorLogger(config.error_log))
        started = {}
        for address, servers in groups.items():
            service = HttpService(self.sockets[address], servers, ctx)
            self.call(service.start())
            self.services.append(service)
            started[address] = service
        return started

    def error_log(self) -> str:
        path = self.tmp / "error.log"
        return path.read_text() if path.exists() else ""

    def config(self, text: str) -> Config:
        path = self.tmp / "check.conf"
        path.write_text(text)
        return sheer.config.load(str(path))

    def close(self) -> None:
        async def stop() -> None:
            for service in self.services:
                service.abort()
            await asyncio.sleep(0)
        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        for sock in self.sockets.values():
            sock.close()


@pytest.fixture
def harness(tmp_path: Path) -> Any:
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.close()


HELLO = ('return 200 "Hello from $hostname. You connected from $remote_addr:$remote_port '
         'to $server_addr:$server_port\\n";')


def hello_upstreams(h: Harness, hosts: list[str]) -> tuple[int, str]:
    """The article's upstream test servers on `hosts`, one shared port; returns (port, http block part)."""
    port = h.listen(hosts[0])
    for host in hosts[1:]:
        h.listen(host, port)
    servers = "".join(f"server {{ listen {host}:{port}; location / {{ {HELLO} }} }}\n" for host in hosts)
    return port, servers


def test_harness_serves_a_return(harness: Harness) -> None:
    port, servers = hello_upstreams(harness, ["127.0.0.11"])
    harness.serve(servers)
    import http.client
    conn = http.client.HTTPConnection("127.0.0.11", port, timeout=2)
    conn.request("GET", "/")
    response = conn.getresponse()
    body = response.read().decode()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/plain"
    assert body.startswith("Hello from ") and f"to 127.0.0.11:{port}\n" in body
