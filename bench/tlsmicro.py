"""What a TLS transport costs per small request, outside sheer: a bare asyncio (uvloop) server answers a
19-byte request with a 40-byte answer, one client in lock-step, and the server process's CPU time per
request is read from /proc (schedstat) — plain TCP, uvloop's TLS transport (memory BIOs), a
non-blocking `ssl.SSLSocket` read and written by OpenSSL itself (bare: read until SSLWantReadError), and
sheer.io.tls_transport's transport on it (`transport`: the checkout's, run from its directory).

    python -m bench.tlsmicro [-n 4000] [--rounds 3]

Needs a certificate and key: made with the `openssl` command in a temporary directory."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import uvloop

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
REQUEST = b"GET / HTTP/1.1\r\n\r\n"
MODES = ("plain", "uvloop", "sslsocket", "transport")


class Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(ANSWER)


def _on_socket(loop: asyncio.AbstractEventLoop, sock: ssl.SSLSocket) -> None:
    def readable() -> None:
        while True:
            try:
                data = sock.recv(65536)
            except ssl.SSLWantReadError:
                return
            if not data:
                loop.remove_reader(sock.fileno())
                sock.close()
                return
            sock.send(ANSWER)

    loop.add_reader(sock.fileno(), readable)


def _serve(mode: str, port: int, cert: str, key: str, ready: Any) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        listener = socket.create_server(("127.0.0.1", port))
        listener.setblocking(False)
        ready.put(True)
        while True:
            conn, _ = await loop.sock_accept(listener)
            if mode == "transport":
                from sheer.io.tls_transport import TlsTransport, accept_tls
                TlsTransport(loop, conn, await accept_tls(loop, conn, ctx, 10), Answer()).start()
            elif mode == "sslsocket":
                conn.setblocking(True)
                tls = ctx.wrap_socket(conn, server_side=True)
                tls.setblocking(False)
                _on_socket(loop, tls)
            else:
                await loop.connect_accepted_socket(Answer, conn, ssl=ctx if mode == "uvloop" else None)

    uvloop.install()
    asyncio.run(main())


def _cpu(pid: int) -> int:
    return sum(int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
               for task in os.listdir(f"/proc/{pid}/task"))


def measure(mode: str, count: int, cert: str, key: str) -> float:
    """Server CPU µs per request."""
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    ready: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(mode, port, cert, key, ready), daemon=True)
    server.start()
    try:
        ready.get(timeout=30)
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if mode != "plain":
            client = ssl.create_default_context()
            client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
            sock = client.wrap_socket(sock)
        with sock:
            for _ in range(200):
                sock.sendall(REQUEST)
                sock.recv(100)
            assert server.pid is not None
            before = _cpu(server.pid)
            for _ in range(count):
                sock.sendall(REQUEST)
                sock.recv(100)
            return (_cpu(server.pid) - before) / count / 1000
    finally:
        server.kill()
        server.join()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tlsmicro", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--count", type=int, default=4000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sheer-tlsmicro-") as tmp:
        cert, key = f"{tmp}/c.pem", f"{tmp}/k.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=bench"],
                       check=True, capture_output=True, timeout=30)
        print("| round | " + " | ".join(f"{mode}: server CPU µs/request" for mode in MODES) + " |")
        print("|---|" + "---|" * len(MODES))
        for n in range(args.rounds):
            cells = [f"{measure(mode, args.count, cert, key):.1f}" for mode in MODES]
            print(f"| {n + 1} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
