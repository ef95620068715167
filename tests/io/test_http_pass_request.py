"""proxy_pass_request_headers off and proxy_pass_request_body off: what reaches the upstream."""

from __future__ import annotations

import threading

import pytest
from test_http_harness import Harness, harness_fixture  # noqa: F401
from test_http_proxy import get

pytestmark = pytest.mark.io


class Recorder:
    """An upstream that keeps the bytes of each request (read until a quiet moment) and answers 200."""

    def __init__(self, harness: Harness, host: str) -> None:
        self.port = harness.listen(host)
        self.sock = harness.sockets[(host, self.port)]
        self.sock.setblocking(True)
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(0.3)
                data = b""
                try:
                    while chunk := conn.recv(65536):
                        data += chunk
                except TimeoutError:
                    pass
                self.requests.append(data)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")


def test_request_headers_and_body_not_passed(harness: Harness) -> None:
    up = Recorder(harness, "127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""server {{ listen 127.0.0.1:{proxy};
        location /all {{ proxy_pass http://127.0.0.11:{up.port}; }}
        location /none {{ proxy_pass http://127.0.0.11:{up.port}; proxy_pass_request_headers off;
                          proxy_pass_request_body off; proxy_set_header X-Set yes; }} }}""")
    headers = {"X-Client": "1", "Content-Type": "text/plain"}
    assert get(proxy, "/all", method="POST", body=b"payload", headers=headers)[0] == 200
    assert get(proxy, "/none", method="POST", body=b"payload", headers=headers)[0] == 200
    full, bare = up.requests
    assert b"X-Client: 1" in full and full.endswith(b"\r\n\r\npayload") and b"Content-Length: 7" in full
    head, _, body = bare.partition(b"\r\n\r\n")
    assert body == b"" and b"X-Client" not in head and b"Content-Length" not in head
    assert head.startswith(b"POST /none HTTP/1.0\r\n") and b"X-Set: yes" in head and b"Host: " in head
