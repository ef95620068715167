"""sheer and Debian's nginx side by side in a private network namespace (only `lo`, named after the
lab: `<lab>-fz`), each proxying to an upstream of its own that records exactly what it received. A
request's raw bytes go to both; what comes back (the class of every answer, in order, or nothing)
and what each upstream got are compared.

Both proxies run the same configuration text (an upstream block named `backend`, so both send the
same Host) with their own ports; timeouts short so that an incomplete request ends in seconds. The
namespace, both proxies and the recorders are removed by `Pair.stop()`, which `Pair.start()` calls
itself when starting fails; the fixture calls it whatever the tests did."""

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
CLIENT_WAIT = 2.5          # seconds a client waits for the proxy's next answer


def config(kind: str, prefix: Path) -> str:
    return f"""worker_processes 1;
error_log {prefix}/{kind}-error.log info;
pid {prefix}/{kind}.pid;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/{kind}-access.log;
    client_body_timeout 2s;
    client_header_timeout 2s;
    upstream backend {{ server 127.0.0.1:{UPSTREAM_PORT[kind]}; }}
    upstream reused {{ server 127.0.0.1:{UPSTREAM_PORT[kind]}; keepalive 4; }}
    server {{
        listen 127.0.0.1:{PROXY_PORT[kind]};
        location / {{
            proxy_pass http://backend;
            proxy_read_timeout 2s;
        }}
        location /keepalive/ {{
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://reused;
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
    """The upstream of one proxy: reads each request (its head, then the body its framing declares,
    or until the proxy goes quiet), keeps the bytes, and answers with `answer` (ANSWER, or what an
    upstream-fault case scripts), then closes unless the answer keeps the connection open."""

    kind: str
    got: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    answer: bytes = ANSWER
    busy: int = 0

    def start(self) -> None:
        with inside():
            self.sock = socket.create_server(("127.0.0.1", UPSTREAM_PORT[self.kind]))
        self.running = True
        threading.Thread(target=self._serve, daemon=True).start()

    def take(self) -> list[bytes]:
        with self.lock:
            got, self.got = self.got, []
        return got

    def quiet(self, timeout: float = 1.0) -> None:
        """Until no connection of the proxy's is being read (its last request recorded)."""
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.01)

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.busy += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        data = b""
        try:
            with conn:
                conn.settimeout(0.5)
                with contextlib.suppress(OSError):
                    while True:
                        while not _complete(data):
                            chunk = conn.recv(65536)
                            if not chunk:
                                return
                            data += chunk
                        request, data = _split(data)
                        with self.lock:
                            self.got.append(request)
                        answer = self.answer
                        conn.sendall(answer)
                        if b"Connection: close" in answer.split(b"\r\n\r\n")[0]:
                            return
                if data:
                    with self.lock:
                        self.got.append(data)
        finally:
            with self.lock:
                self.busy -= 1

    def close(self) -> None:
        self.running = False
        self.sock.close()


def _framing(head: bytes) -> tuple[int | None, bool]:
    length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    chunked = re.search(rb"(?im)^transfer-encoding:.*chunked", head) is not None
    return (int(length.group(1)) if length else None), chunked


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    length, chunked = _framing(head)
    if length is not None:
        return len(body) >= length
    if chunked:
        return b"0\r\n\r\n" in body
    return True


def _split(data: bytes) -> tuple[bytes, bytes]:
    """The first request in `data` and what follows it."""
    head, _, body = data.partition(b"\r\n\r\n")
    length, chunked = _framing(head)
    if length is not None:
        end = len(head) + 4 + length
    elif chunked:
        end = len(head) + 4 + body.index(b"0\r\n\r\n") + 5
    else:
        end = len(head) + 4
    return data[:end], data[end:]


@dataclass(frozen=True)
class Outcome:
    answers: tuple[str, ...]    # each answer's class, in order ("2xx", "0.9 4xx", "garbage"), then how
                                # the connection ended: "closed" or "timeout" (still open, silent)
    upstream: tuple[bytes, ...]
    raw: bytes = b""            # what the client received, as it came

    @property
    def leaked(self) -> int:
        """Bytes of an upstream fault case's unasked second response seen by the client."""
        return self.raw.count(b"WRONG") + self.raw.count(b"HTTP/1.1 404 X")

    def differs(self, other: Outcome) -> list[str]:
        out = []
        if self.answers != other.answers:
            out.append(f"answers {list(other.answers)} where nginx gives {list(self.answers)}")
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


def exchange(port: int, data: bytes, wait: float = CLIENT_WAIT) -> tuple[tuple[str, ...], bytes]:
    """Send `data`, read until the proxy closes or is silent for `wait` seconds; the answers' classes
    and the bytes."""
    with inside():
        sock = socket.socket()
    got = b""
    end = "closed"
    with sock:
        try:
            sock.settimeout(wait)
            sock.connect(("127.0.0.1", port))
            sock.sendall(data)
            while True:
                ready, _, _ = select.select([sock], [], [], wait)
                if not ready:
                    end = "timeout"
                    break
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionRefusedError:
            return ("refused",), b""
        except (ConnectionResetError, BrokenPipeError):
            end = "closed"
        except TimeoutError:
            end = "timeout"
    return (*answers(got), end), got


def answers(data: bytes) -> list[str]:
    """The class of each response in a stream (their framing: Content-Length or chunked)."""
    out = []
    while data:
        match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        if match is None:
            page = re.search(rb"<title>(\d{3}) ", data)      # HTTP/0.9: the page alone, no status line
            out.append(f"0.9 {page.group(1)[:1].decode()}xx" if page else "garbage")
            break
        out.append(f"{match.group(1)[:1].decode()}xx")
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        length, chunked = _framing(head)
        if match.group(1)[:1] == b"1" or match.group(1) in (b"204", b"304"):
            data = rest                                         # no body, whatever the headers say
        elif chunked:
            end = rest.find(b"0\r\n\r\n")
            data = rest[end + 5:] if end >= 0 else b""
        else:
            data = rest[length or 0:]
    return out


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
            while exchange(port, b"GET / HTTP/1.0\r\n\r\n", 1.0)[0][0] != "2xx":
                if time.monotonic() > deadline or self.procs[kind].poll() is not None:
                    raise RuntimeError(f"{kind} did not start: {(self.dir / f'{kind}.out').read_text()}")
                time.sleep(0.1)
        self.take()
        return self

    def take(self) -> dict[str, tuple[bytes, ...]]:
        for recorder in self.recorders.values():
            recorder.quiet()
        return {kind: tuple(r.take()) for kind, r in self.recorders.items()}

    def send(self, data: bytes, upstream_answer: bytes = ANSWER) -> dict[str, Outcome]:
        """The same bytes to both at once; each one's answers and what its upstream received."""
        for recorder in self.recorders.values():
            recorder.answer = upstream_answer
        got: dict[str, tuple[tuple[str, ...], bytes]] = {}

        def one(kind: str) -> None:
            got[kind] = exchange(PROXY_PORT[kind], data)

        threads = [threading.Thread(target=one, args=(kind,)) for kind in PROXY_PORT]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        received = self.take()
        return {kind: Outcome(got[kind][0], received[kind], got[kind][1]) for kind in PROXY_PORT}

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs.values())

    def stop(self) -> None:
        """Everything this pair started, whatever state it is in: the proxies (by their process
        group, started here), the recorders, the namespace, the files."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        for recorder in self.recorders.values():
            with contextlib.suppress(OSError, AttributeError):
                recorder.close()
        subprocess.run(["ip", "netns", "del", NETNS], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
