"""sheer and Debian's nginx side by side in a private network namespace (only `lo`, named after the
lab: `<lab>-fz`), each proxying to an upstream of its own that records exactly what it received. A
request's raw bytes go to both; what comes back (the status line's class, or nothing) and what each
upstream got are compared.

Both proxies run the same configuration text (an upstream block named `backend`, so both send the
same Host) with their own ports; timeouts short so that an incomplete request ends in seconds."""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import netns

from sheer.lab.topology import LAB
from sheer.lab.witness import NGINX

NETNS = f"{LAB}-fz"
PROXY_PORT = {"nginx": 8081, "sheer": 8082}
UPSTREAM_PORT = {"nginx": 9081, "sheer": 9082}
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
CLIENT_WAIT = 2.5          # seconds a client waits for the proxy's answer


def config(kind: str, prefix: Path) -> str:
    return f"""worker_processes 1;
error_log {prefix}/{kind}-error.log info;
pid {prefix}/{kind}.pid;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/{kind}-access.log;
    upstream backend {{ server 127.0.0.1:{UPSTREAM_PORT[kind]}; }}
    server {{
        listen 127.0.0.1:{PROXY_PORT[kind]};
        location / {{
            proxy_pass http://backend;
            proxy_read_timeout 2s;
        }}
    }}
}}
"""


@contextlib.contextmanager
def inside() -> Iterator[None]:
    """This thread in the namespace for as long as it makes its sockets (they stay there)."""
    netns.pushns(NETNS)
    try:
        yield
    finally:
        netns.popns()


@dataclass
class Recorder:
    """The upstream of one proxy: reads a request (its head, then the body its framing declares, or
    until the proxy goes quiet), keeps the bytes, answers 200 "ok" and closes."""

    kind: str
    got: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        with inside():
            self.sock = socket.create_server(("127.0.0.1", UPSTREAM_PORT[self.kind]))
        self.running = True
        threading.Thread(target=self._serve, daemon=True).start()

    def take(self) -> list[bytes]:
        with self.lock:
            got, self.got = self.got, []
        return got

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            conn.settimeout(0.5)
            with contextlib.suppress(OSError):
                while not _complete(data):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(ANSWER)
        with self.lock:
            self.got.append(data)

    def close(self) -> None:
        self.running = False
        self.sock.close()


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    if length:
        return len(body) >= int(length.group(1))
    if re.search(rb"(?im)^transfer-encoding:.*chunked", head):
        return body.endswith(b"0\r\n\r\n")
    return True


@dataclass(frozen=True)
class Outcome:
    answer: str                 # "2xx", "4xx", ... or "none" (closed, nothing sent) or "timeout"
    status: int | None
    upstream: tuple[bytes, ...]

    def differs(self, other: Outcome) -> list[str]:
        out = []
        if self.answer != other.answer:
            out.append(f"answer {other.answer} ({other.status}) where nginx gives {self.answer} "
                       f"({self.status})")
        if normalized(self.upstream) != normalized(other.upstream):
            out.append(f"upstream got {list(other.upstream)!r} where nginx's got {list(self.upstream)!r}")
        return out


def normalized(requests: tuple[bytes, ...]) -> tuple[tuple[bytes, tuple[bytes, ...], bytes], ...]:
    """Request line, header lines in order, body: what must be the same (the header order too)."""
    out = []
    for raw in requests:
        head, _, body = raw.partition(b"\r\n\r\n")
        line, *headers = head.split(b"\r\n")
        out.append((line, tuple(headers), body))
    return tuple(out)


def exchange(port: int, data: bytes) -> tuple[str, int | None]:
    with inside():
        sock = socket.socket()
    with sock:
        sock.settimeout(CLIENT_WAIT)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(data)
            got = b""
            deadline = time.monotonic() + CLIENT_WAIT
            while b"\r\n\r\n" not in got and b"</html>" not in got:
                ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    if not got:
                        return "timeout", None
                    break
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
        except ConnectionRefusedError:
            return "refused", None
        except (ConnectionResetError, BrokenPipeError):
            return "none", None
        except TimeoutError:
            return "timeout", None
    match = re.match(rb"HTTP/1\.[01] (\d{3})", got)
    if match:
        status = int(match.group(1))
        return f"{status // 100}xx", status
    page = re.search(rb"<title>(\d{3}) ", got)     # an HTTP/0.9 answer: the page alone, no status line
    if page:
        status = int(page.group(1))
        return f"0.9 {status // 100}xx", status
    return ("none" if not got else "garbage"), None


class Pair:
    """nginx and sheer, each with its recorder, in the namespace."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sheer-fz-"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.recorders = {kind: Recorder(kind) for kind in PROXY_PORT}

    def start(self) -> Pair:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Pair:
        subprocess.run(["ip", "netns", "del", NETNS], check=False, capture_output=True)   # a crashed run's
        subprocess.run(["ip", "netns", "add", NETNS], check=True)
        subprocess.run(["ip", "-n", NETNS, "link", "set", "lo", "up"], check=True)
        for recorder in self.recorders.values():
            recorder.start()
        for kind in PROXY_PORT:
            conf = self.dir / f"{kind}.conf"
            text = config(kind, self.dir)
            if kind == "nginx":
                conf.write_text(f"daemon off;\n{text}")
                cmd = [NGINX, "-p", str(self.dir), "-e", str(self.dir / "nginx-error.log"), "-c", str(conf)]
            else:
                conf.write_text(text)
                cmd = [sys.executable, "-m", "sheer", "-c", str(conf)]
            log = open(self.dir / f"{kind}.out", "wb")   # noqa: SIM115 - kept open for the process's life
            self.procs[kind] = subprocess.Popen(["ip", "netns", "exec", NETNS, *cmd], stdout=log, stderr=log,
                                                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        for kind, port in PROXY_PORT.items():
            while exchange(port, b"GET / HTTP/1.0\r\n\r\n")[0] != "2xx":
                if time.monotonic() > deadline or self.procs[kind].poll() is not None:
                    raise RuntimeError(f"{kind} did not start: {(self.dir / f'{kind}.out').read_text()}")
                time.sleep(0.1)
        self.take()
        return self

    def take(self) -> dict[str, tuple[bytes, ...]]:
        return {kind: tuple(r.take()) for kind, r in self.recorders.items()}

    def send(self, data: bytes) -> dict[str, Outcome]:
        """The same bytes to both at once; each one's answer and what its upstream received."""
        answers: dict[str, tuple[str, int | None]] = {}
        threads = [threading.Thread(target=lambda k=kind: answers.__setitem__(k, exchange(PROXY_PORT[k],
                                                                                           data)))
                   for kind in PROXY_PORT]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.05)           # the recorders' last read
        got = self.take()
        return {kind: Outcome(*answers[kind], got[kind]) for kind in PROXY_PORT}

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs.values())

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        for recorder in self.recorders.values():
            with contextlib.suppress(OSError, AttributeError):
                recorder.close()
        subprocess.run(["ip", "netns", "del", NETNS], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
