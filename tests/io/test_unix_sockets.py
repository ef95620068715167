"""Unix-domain sockets through a real sheer master, as nginx has them: upstream peers (http, stream,
keepalive pools, health checks), listeners (http, stream, proxy_protocol, realip), the socket file's
life (made 0666, kept across a reload, removed at exit), and nginx's messages for bad paths."""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sheer_process import Sheer, free_port, wait_for

pytestmark = pytest.mark.io


class UnixHttp:
    """An HTTP/1.1 upstream on a unix-domain socket: answers each request with its request line and
    headers as the body, keeps connections alive; counts connections."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(64)
        self.connections = 0
        self.heads: list[bytes] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            try:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buffer += chunk
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    self.heads.append(head)
                    body = head + b"\r\n"
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except OSError:
                return

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(2)


class UnixEcho:
    """Echoes every byte on a unix-domain socket; closes after the client's EOF."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(64)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()
        self.thread.join(2)


def http_get(port: int | str, path: str, host: str = "localhost") -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.0 request to 127.0.0.1:port, or to a unix-domain socket path."""
    if isinstance(port, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(port)
    else:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    with sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def stream_io(port: int, data: bytes, want: int | None = None) -> bytes:
    """Send `data` and read `want` bytes (default: as many as sent), or until the proxy closes. No
    half-close: as nginx's, a session ends at the first EOF (proxy_half_close off)."""
    want = len(data) if want is None else want
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        out = b""
        while len(out) < want or not want:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def test_http_unix_upstreams(run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any],
                             tmp_path: Path) -> None:
    """proxy_pass http://unix:/path:/uri/ (the path ends at the colon), an upstream block mixing unix
    and inet peers with keepalive, $upstream_addr written unix:/path, Host: localhost as nginx."""
    app = closing(UnixHttp(tmp_path / "app.sock"))
    port = free_port()
    log = tmp_path / "access.log"
    run_sheer(f"""http {{
    log_format up "$request_uri $upstream_addr $upstream_status";
    upstream app {{ server unix:{app.path}; keepalive 4; }}
    server {{
        listen 127.0.0.1:{port};
        access_log {log} up;
        location /direct/ {{ proxy_pass http://unix:{app.path}:/inner/; }}
        location /plain/ {{ proxy_pass http://unix:{app.path}; }}
        location /pool/ {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location /var/ {{ proxy_pass http://$arg_to; }}
    }}
}}
""")
    status, _, body = http_get(port, "/direct/x?y=1")
    assert status == 200 and body.startswith(b"GET /inner/x?y=1 HTTP/1.0\r\n"), body
    assert b"\r\nHost: localhost\r\n" in body
    status, _, body = http_get(port, "/plain/a")
    assert status == 200 and body.startswith(b"GET /plain/a HTTP/1.0\r\n")
    before = app.connections
    for _ in range(5):
        status, _, body = http_get(port, "/pool/k")
        assert status == 200 and body.startswith(b"GET /pool/k HTTP/1.1\r\n")
    assert app.connections - before == 1          # the keepalive pool reused one unix connection
    status, _, body = http_get(port, f"/var/v?to=unix:{app.path}:/z")
    assert status == 200 and body.startswith(b"GET /z HTTP/1.0\r\n"), body
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 8, what="access log")
    lines = log.read_text().splitlines()
    assert f"/direct/x?y=1 unix:{app.path} 200" in lines
    assert f"/var/v?to=unix:{app.path}:/z unix:{app.path} 200" in lines


def test_http_unix_listener(run_sheer: Callable[..., Sheer], tmp_path: Path) -> None:
    """listen unix:/path: $remote_addr "unix:", $remote_port empty, $server_addr the path; curl
    --unix-socket reaches it; the socket file is 0666 and removed at exit."""
    path = tmp_path / "web.sock"
    port = free_port()
    sheer = run_sheer(f"""http {{
    server {{
        listen unix:{path};
        listen 127.0.0.1:{port};
        location / {{ return 200 "[$remote_addr][$remote_port][$server_addr][$server_port]"; }}
        location /only-unix/ {{ allow unix:; deny all; proxy_pass http://127.0.0.1:{port}/; }}
        location /via/ {{ proxy_bind $remote_addr transparent; proxy_pass http://127.0.0.1:{port}/; }}
    }}
}}
""")
    assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o666
    assert http_get(str(path), "/")[2] == f"[unix:][][unix:{path}][]".encode()
    inet = http_get(port, "/")[2]
    assert inet.startswith(b"[127.0.0.1][") and inet.endswith(f"][127.0.0.1][{port}]".encode()), inet
    curl = subprocess.run(["curl", "-s", "--unix-socket", str(path), "http://x/only-unix/"],
                          capture_output=True, timeout=10, check=False)
    assert curl.stdout.startswith(b"[127.0.0.1]["), curl       # `return` would answer before allow/deny
    assert http_get(port, "/only-unix/")[0] == 403
    # nginx: "unix:" is no local address to bind: said, and the upstream connection is made unbound
    status, _, body = http_get(str(path), "/via/")
    assert status == 200 and body.startswith(b"[127.0.0.1]["), body
    sheer.wait_log('invalid local address "unix:" while connecting to upstream')
    sheer.signal(signal.SIGTERM)
    sheer.wait(10)
    assert not path.exists()          # nginx removes its unix-domain sockets at exit


def test_stream_unix_both_ways(run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any],
                               tmp_path: Path) -> None:
    """stream: proxy_pass unix:/path and an upstream of unix peers; a unix listener with proxy_protocol
    whose PROXY header is trusted through `set_real_ip_from unix:` (proxy_protocol_unix.t's setup)."""
    echo = closing(UnixEcho(tmp_path / "echo.sock"))
    front = tmp_path / "front.sock"
    p1, p2, p3, p4 = free_port(), free_port(), free_port(), free_port()
    run_sheer(f"""stream {{
    map $remote_addr $target {{ default unix:{echo.path}; }}
    server {{ listen 127.0.0.1:{p4}; proxy_pass $target; }}
    upstream u {{ server unix:{echo.path}; }}
    server {{ listen 127.0.0.1:{p1}; proxy_pass unix:{echo.path}; }}
    server {{ listen 127.0.0.1:{p2}; proxy_pass u; }}
    server {{ listen unix:{front} proxy_protocol; set_real_ip_from unix:;
             return "$remote_addr:$realip_remote_addr:$proxy_protocol_addr"; }}
    server {{ listen 127.0.0.1:{p3}; proxy_pass unix:{front}; proxy_protocol on; }}
}}
""")
    assert stream_io(p1, b"SEE-THIS") == b"SEE-THIS"
    assert stream_io(p2, b"x" * 100000) == b"x" * 100000
    assert stream_io(p3, b"", want=0) == b"127.0.0.1:unix::127.0.0.1"
    assert stream_io(p4, b"by variable") == b"by variable"


def test_socket_file_across_reload_and_drop(run_sheer: Callable[..., Sheer], tmp_path: Path) -> None:
    """A reload that keeps the address keeps the very socket (its inode); one that drops it deletes
    the file with nginx's warning."""
    path = tmp_path / "a.sock"
    port = free_port()
    one = f"http {{ server {{ listen unix:{path}; listen 127.0.0.1:{port}; return 200 one; }} }}\n"
    sheer = run_sheer(one)
    inode = path.stat().st_ino
    sheer.write(one.replace("one", "two"))
    sheer.signal(signal.SIGHUP)
    wait_for(lambda: http_get(str(path), "/")[2] == b"two", 10, "the reload")
    assert path.stat().st_ino == inode
    sheer.write(f"http {{ server {{ listen 127.0.0.1:{port}; return 200 three; }} }}\n")
    sheer.signal(signal.SIGHUP)
    wait_for(lambda: http_get(port, "/")[2] == b"three", 10, "the second reload")
    assert not path.exists()
    assert f"deleting socket {path}" in sheer.error_log()


def test_bad_paths_as_nginx(tmp_path: Path) -> None:
    """-t and start: nginx's messages for a missing directory, a file that is not a socket, a path
    too long for sun_path, and a socket file already there (nginx does not remove it)."""
    def run(*args: str, listen: str) -> subprocess.CompletedProcess[str]:
        conf = tmp_path / "t.conf"
        conf.write_text(f"events {{}}\nerror_log {tmp_path}/e.log;\n"
                        f"http {{ server {{ listen {listen}; return 200; }} }}\n")
        return subprocess.run([sys.executable, "-m", "sheer", *args, "-c", str(conf)], capture_output=True,
                              text=True, timeout=30, check=False)

    missing = run("-t", listen=f"unix:{tmp_path}/nowhere/a.sock")
    assert missing.returncode == 1
    assert f"bind() to unix:{tmp_path}/nowhere/a.sock failed (2: No such file or directory)" in missing.stderr
    plain = tmp_path / "plain"
    plain.write_text("x")
    taken = run("-t", listen=f"unix:{plain}")
    assert taken.returncode == 1
    assert f"bind() to unix:{plain} failed (98: Address already in use)" in taken.stderr
    long = "/tmp/" + "y" * 103
    too_long = run("-t", listen=f"unix:{long}")
    assert too_long.returncode == 1
    assert f'too long path in the unix domain socket in "unix:{long}" of the "listen" directive' \
        in too_long.stderr
    stale = tmp_path / "stale.sock"
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(stale))
    left.close()                                   # a socket file whose process is gone
    assert run("-t", listen=f"unix:{stale}").returncode == 0
    start = run(listen=f"unix:{stale}")
    assert start.returncode == 1
    assert f"bind() to unix:{stale} failed (98: Address already in use)" in start.stderr
    assert stale.exists()


def test_proxy_bind_with_a_unix_peer_fails_as_nginx(run_sheer: Callable[..., Sheer],
                                                      closing: Callable[[Any], Any], tmp_path: Path) -> None:
    """nginx binds proxy_bind's address whatever the peer: bind() fails (22: Invalid argument), the
    request gets a 500; without proxy_bind the same peer answers."""
    app = closing(UnixHttp(tmp_path / "app.sock"))
    port = free_port()
    sheer = run_sheer(f"""http {{
    server {{
        listen 127.0.0.1:{port};
        location /bound {{ proxy_bind 127.0.0.1; proxy_pass http://unix:{app.path}:/; }}
        location /free {{ proxy_pass http://unix:{app.path}:/; }}
    }}
}}
""")
    assert http_get(port, "/bound")[0] == 500
    assert http_get(port, "/free")[0] == 200
    sheer.wait_log("bind(127.0.0.1) failed (22: Invalid argument) while connecting to upstream")
    assert f'upstream: "http://unix:{app.path}:/"' in sheer.error_log()     # nginx's colon before the URI


def test_health_check_of_a_unix_peer(run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any],
                                     tmp_path: Path) -> None:
    """Active checks connect to the socket: a peer whose socket is gone is marked down, the other serves."""
    alive_path = tmp_path / "alive.sock"
    dead_path = tmp_path / "dead.sock"
    echo = closing(UnixEcho(alive_path))
    port = free_port()
    sheer = run_sheer(f"""stream {{
    upstream u {{ zone u 64k; server unix:{dead_path}; server unix:{echo.path}; }}
    server {{ listen 127.0.0.1:{port}; proxy_pass u; health_check interval=200ms fails=1; }}
}}
""")
    sheer.wait_log(f'peer unix:{dead_path} in upstream "u" is unhealthy', timeout=10)
    assert f"peer unix:{echo.path} in upstream" not in sheer.error_log()
    for _ in range(4):
        assert stream_io(port, b"ok") == b"ok"
