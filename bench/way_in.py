"""An HTTP request's way in, timed alone: from `data_received` to the handler, in one process, no socket.

    python -m bench.way_in [-n 20000] [--request 'GET / HTTP/1.1|Host: a|']

A client connection is built from a real configuration (`location / { proxy_pass http://u; ... }`, as
the http workload's), its transport a stub and its proxy handler one that finishes the request at once
(so `finish` runs too); the same request is fed again and again on it. Prints µs per request (the best
and the median of 7 batches). Under valgrind, the difference of two counts is the CPU instructions per
request, which the machine's load does not move:

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python -m bench.way_in -n 2100 --batches 1     # then -n 100: (Ir₁ - Ir₂) / 2000
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sheer.config import load
from sheer.io.http.client import ClientConnection
from sheer.io.http.service import HttpService
from sheer.io.logs import ErrorLogger
from sheer.runtime.context import worker_context

CONF = """error_log /dev/null;
http { access_log off; upstream u { server 127.0.0.21:9; keepalive 8; }
 server { listen 127.0.0.1:18399; keepalive_requests 1000000000;
  location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
"""


class _Transport:
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 18399)}.get(name, default)

    def write(self, data: bytes) -> None:
        pass

    def writelines(self, data: list[bytes]) -> None:
        pass


class _Done:
    def close(self) -> None:
        pass


def connection() -> ClientConnection:
    with tempfile.TemporaryDirectory(prefix="sheer-way-in-") as tmp:
        Path(tmp, "sheer.conf").write_text(CONF)
        config = load(str(Path(tmp, "sheer.conf")), prefix=tmp)
    ctx = worker_context(config, ErrorLogger.__new__(ErrorLogger))
    assert config.http is not None
    service: Any = HttpService(socket.socket(), list(config.http.servers), ctx)
    loop = asyncio.new_event_loop()

    async def slots() -> Any:
        return ctx.slots()

    service.loop = loop
    service.slots = loop.run_until_complete(slots())

    def proxy(conn: ClientConnection, request: Any, plan: Any) -> _Done:
        conn.finish(request, plan, keepalive=True)
        return _Done()

    service.proxy = proxy
    loop.create_task = lambda coro: None      # type: ignore[method-assign,assignment]
    conn = ClientConnection(service)
    conn.connection_made(_Transport())        # type: ignore[arg-type]
    return conn


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.way_in", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--count", type=int, default=20000, help="requests per batch")
    p.add_argument("--batches", type=int, default=7)
    p.add_argument("--request", default="GET / HTTP/1.1|Host: 127.0.0.1:18301||", help="'|' for CRLF")
    args = p.parse_args(argv)
    request = args.request.replace("|", "\r\n").encode()
    conn = connection()
    times = []
    for _ in range(args.batches):
        start = time.perf_counter()
        for _ in range(args.count):
            conn.data_received(request)
        times.append((time.perf_counter() - start) / args.count * 1e6)
    if conn.requests != args.batches * args.count:
        raise SystemExit(f"{conn.requests} requests read, not {args.batches * args.count}")
    print(f"µs/request: best {min(times):.2f}, median {statistics.median(times):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
