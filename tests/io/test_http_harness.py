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
from sheer.runtime.context import worker_context

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
        self.upstreams: list[ScriptedUpstream] = []

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
        ctx = worker_context(config, ErrorLogger(config.error_log))
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
            for upstream in self.upstreams:
                if upstream.server is not None:
                    upstream.server.close()
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            await asyncio.sleep(0)
        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        for sock in self.sockets.values():
            sock.close()


@pytest.fixture(name="harness")
def harness_fixture(tmp_path: Path) -> Any:
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


class ScriptedUpstream:
    """A minimal HTTP/1.1 origin on the harness loop: echoes request bodies, answers with the framing
    the path asks for (/length, /chunked, /close, /big/N, /status/N, /silent), records what it saw."""

    def __init__(self, h: Harness, host: str) -> None:
        self.port = h.listen(host)
        self.sock = h.sockets[(host, self.port)]
        self.accepted = 0
        self.requests: list[tuple[bytes, bytes]] = []   # (head, body)
        self.server: asyncio.AbstractServer | None = None
        h.call(self._start())
        h.upstreams.append(self)

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._client, sock=self.sock.dup())

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split()[1]
                fields = {k.lower(): v.strip()
                          for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                body = b""
                if "content-length" in fields:
                    body = await reader.readexactly(int(fields["content-length"]))
                elif fields.get("transfer-encoding") == "chunked":
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                        body += (await reader.readexactly(size + 2))[:-2]
                        if size == 0:
                            break
                self.requests.append((head, body))
                if not await self._answer(path, body, writer):
                    break
                if fields.get("connection", "").lower() == "close" or lines[0].endswith("1.0"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, path: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        if path.startswith("/silent"):
            await asyncio.sleep(10)
            return False
        if path.startswith("/big/"):
            body = bytes(range(256)) * (int(path.split("/")[2]) // 256)
        status = int(path.split("/")[2]) if path.startswith("/status/") else 200
        if path.startswith(("/chunked", "/big/")):
            writer.write(b"HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n\r\n" % status)
            for start in range(0, len(body), 100_000):
                piece = body[start:start + 100_000]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        elif path.startswith("/close"):
            writer.write(b"HTTP/1.1 %d X\r\nConnection: close\r\n\r\n%s" % (status, body))
            await writer.drain()
            return False
        else:
            writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
        await writer.drain()
        return True
