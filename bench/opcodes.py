"""Python bytecodes a sheer worker executes per TCP stream connection or per request: a steady measure of
the interpreter's share of the work, where CPU time per operation moves with the machine's load.

    python -m bench.opcodes --checkout /tmp/before --checkout . -n 200

Each checkout (with its `.venv`) runs one worker on loopback with a stream server in front of a quiet
upstream (a thread here that answers every chunk, and closes after the answer in `new`), under a trace
function counting opcodes per function (sys.settrace with f_trace_opcodes, installed in the worker by a
sitecustomize on PYTHONPATH). `new` opens a connection per request, `keepalive` sends every request on
one connection; `http` and `https` are the bench's http and tls-keepalive workloads (a keepalive
client, upstream keepalive; `https` over TLS 1.3 with an ECDSA P-256 certificate made with `openssl`);
`tls-new` is the bench's tls-handshake (`listen ssl`, `return 200`; a TLS 1.3 handshake per connection,
then the client closes without a request, as `openssl s_time -new` does).
The count includes the event loop's Python around the relay, not the C code of socket calls or the
kernel: compare builds with it, and the kernel side with `strace -c`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HOOK = '''
import os, sys, json
if os.environ.get("SHEER_OPCODES"):
    import sheer.runtime.master as master
    real = master.run_worker
    def counted(*args, **kwargs):
        counts = {}
        def tracer(frame, event, arg):
            frame.f_trace_opcodes = True
            if event == "opcode":
                key = frame.f_code.co_filename + ":" + frame.f_code.co_name
                counts[key] = counts.get(key, 0) + 1
            return tracer
        sys.settrace(tracer)
        try:
            return real(*args, **kwargs)
        finally:
            sys.settrace(None)
            with open(os.environ["SHEER_OPCODES"], "w") as out:
                json.dump(counts, out)
    master.run_worker = counted
'''
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n"
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"


def upstream(close: bool) -> socket.socket:
    listener = socket.create_server(("127.0.0.21", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            while conn.recv(65536):
                conn.sendall(RESPONSE)
                if close:
                    return

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener


def _config(mode: str, port: int, up: int, tmp: str, peers: int = 1) -> str:
    servers = f"server 127.0.0.21:{up}; " * peers    # the same upstream `peers` times: a balancer of N
    if mode in ("http", "https"):   # the bench's http (tls-keepalive) workload: keepalive client and upstream
        tls = (f" ssl; ssl_certificate {tmp}/cert.pem; ssl_certificate_key {tmp}/key.pem; "
               f"ssl_protocols TLSv1.3" if mode == "https" else "")
        return (f"worker_processes 1;\nhttp {{ access_log off; upstream u {{ {servers}"
                f"keepalive 8; }} server {{ listen 127.0.0.1:{port}{tls}; location / {{ proxy_pass http://u; "
                f'proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}\n')
    if mode == "tls-new":   # the bench's tls-handshake workload
        return (f"worker_processes 1;\nhttp {{ access_log off; server {{ listen 127.0.0.1:{port} ssl; "
                f"ssl_certificate {tmp}/cert.pem; ssl_certificate_key {tmp}/key.pem; ssl_protocols TLSv1.3; "
                f"location / {{ return 200; }} }} }}\n")
    if mode == "dsr":       # the bench's DSR workload: the upstream answers the client itself
        return (f"worker_processes 1;\nstream {{ upstream u {{ server 127.0.0.21:{up}; "
                f"server 127.0.0.21:{up}; }} server {{ listen 127.0.0.1:{port} udp; proxy_responses 0; "
                f"dsr_without_health_check on; "
                f"proxy_bind $remote_addr:$remote_port transparent; proxy_pass u; }} }}\n")
    if mode == "udp":       # proxied datagrams, one answer each
        return (f"worker_processes 1;\nstream {{ upstream u {{ server 127.0.0.21:{up}; }} server {{ "
                f"listen 127.0.0.1:{port} udp; proxy_responses 1; proxy_pass u; }} }}\n")
    if peers > 1:
        return (f"worker_processes 1;\nstream {{ upstream u {{ {servers}}} server {{ "
                f"listen 127.0.0.1:{port}; proxy_bind $remote_addr transparent; proxy_pass u; }} }}\n")
    return (f"worker_processes 1;\nstream {{ server {{ listen 127.0.0.1:{port}; "
            f"proxy_bind $remote_addr transparent; proxy_pass 127.0.0.21:{up}; }} }}\n")


def udp_upstream() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.21", 0))

    def serve() -> None:
        while True:
            try:
                data, peer = sock.recvfrom(65536)
                sock.sendto(data, peer)
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    return sock


def run(checkout: Path, mode: str, count: int, peers: int = 1) -> dict[str, float]:
    """Opcodes per function over `count` operations (a datagram that probed the startup taken out)."""
    extra = 0
    with tempfile.TemporaryDirectory(prefix="sheer-opcodes-") as tmp:
        Path(tmp, "sitecustomize.py").write_text(HOOK)
        up = udp_upstream() if mode in ("udp", "dsr") else upstream(close=mode == "new")
        probe = socket.create_server(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        conf = Path(tmp, "lb.conf")
        if mode in ("https", "tls-new"):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem", "-days", "1",
                            "-subj", "/CN=bench"], check=True, capture_output=True, timeout=30)
        conf.write_text(_config(mode, port, up.getsockname()[1], tmp, peers))
        out = Path(tmp, "counts.json")
        env = {**os.environ, "PYTHONPATH": tmp, "SHEER_OPCODES": str(out)}
        proc = subprocess.Popen([str(checkout / ".venv/bin/sheer"), "-c", str(conf)], env=env)
        try:
            for _ in range(200):
                if mode in ("udp", "dsr"):
                    if _answers(port):          # a startup under load can take seconds
                        extra = 1               # that datagram went through the worker too
                        break
                    continue
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            time.sleep(0.5)
            counts = _load(proc, out, port, mode, count)
        finally:
            if proc.poll() is None:
                proc.kill()
            up.close()
        return {name: n * count / (count + extra) for name, n in counts.items()}


def _answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        sock.sendto(b"ping", ("127.0.0.1", port))
        try:
            sock.recvfrom(65536)
            return True
        except TimeoutError:
            return False


def _load(proc: subprocess.Popen[bytes], out: Path, port: int, mode: str, count: int) -> dict[str, int]:
    if mode in ("udp", "dsr"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            for _ in range(count):
                sock.sendto(b"ping", ("127.0.0.1", port))
                sock.recvfrom(65536)         # DSR: from the upstream itself
    elif mode == "tls-new":
        client = ssl.create_default_context()
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        for _ in range(count):
            with client.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)):
                pass
    elif mode == "new":
        for _ in range(count):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(REQUEST)
                while sock.recv(65536):
                    pass
    else:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if mode == "https":
            client = ssl.create_default_context()
            client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
            sock = client.wrap_socket(sock)
        with sock:
            for _ in range(count):
                sock.sendall(REQUEST)
                got = b""
                while len(got) < len(RESPONSE):
                    got += sock.recv(65536)
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    counts: dict[str, int] = json.loads(out.read_text())
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.opcodes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkout", type=Path, action="append", required=True, help="a checkout with its .venv")
    p.add_argument("-n", "--count", type=int, default=200, help="connections (new) or requests (keepalive)")
    p.add_argument("-m", "--mode", default="both",
                   choices=("new", "keepalive", "both", "http", "https", "tls-new", "udp", "dsr"))
    p.add_argument("--peers", type=int, default=1,
                   help="upstream servers (http, https, new, keepalive): the balancer picks among N")
    p.add_argument("--top", type=int, default=0, help="also list the N functions executing the most")
    args = p.parse_args(argv)
    modes = ("new", "keepalive") if args.mode == "both" else (args.mode,)
    print("| checkout | " + " | ".join(f"{m}: opcodes/op" for m in modes) + " |")
    print("|---|" + "---|" * len(modes))
    for checkout in args.checkout:
        cells, tops = [], []
        for mode in modes:
            counts = run(checkout.resolve(), mode, args.count, args.peers)
            cells.append(f"{sum(counts.values()) / args.count:,.0f}")
            tops += [f"  {mode} {n / args.count:8.1f} {name.rsplit('/', 2)[-1]}"
                     for name, n in sorted(counts.items(), key=lambda kv: -kv[1])[:args.top]]
        print(f"| {checkout} | " + " | ".join(cells) + " |")
        if tops:
            print("\n".join(tops), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
