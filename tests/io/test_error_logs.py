"""Several `error_log` lines in one context, each with its level, and nginx's syslog lines, from a real
sheer master (the syslog server is a UDP socket on loopback)."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sheer_process import Sheer, free_port, wait_for

pytestmark = pytest.mark.io

SYSLOG = re.compile(r"<(\d{1,3})>([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\S+) (\w{1,32}): "
                    r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: .*)")
SEVERITY = {"emerg": 0, "alert": 1, "crit": 2, "error": 3, "warn": 4, "notice": 5, "info": 6, "debug": 7}


def datagrams(sock: socket.socket) -> list[bytes]:
    """What the syslog socket received, once something did."""
    found: list[bytes] = []
    sock.setblocking(False)

    def drained() -> bool:
        try:
            while True:
                found.append(sock.recv(4096))
        except BlockingIOError:
            return bool(found)

    wait_for(drained, 5, "syslog datagrams")
    return found


def test_each_log_gets_what_its_level_admits(run_sheer: Callable[..., Sheer], closing: Callable[[Any], Any],
                                             tmp_path: Path) -> None:
    main_syslog = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    main_syslog.bind(("127.0.0.1", 0))
    server_syslog = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    server_syslog.bind(("127.0.0.1", 0))
    port, dead = free_port(), free_port()
    run_sheer(f"""error_log {tmp_path}/notice.log notice;
error_log {tmp_path}/warn.log warn;
error_log syslog:server=127.0.0.1:{main_syslog.getsockname()[1]},tag=lb,facility=local0 info;
stream {{
    server {{
        listen 127.0.0.1:{port};
        proxy_pass 127.0.0.1:{dead};
        error_log {tmp_path}/server.log info;
        error_log {tmp_path}/server_crit.log crit;
        error_log syslog:server=127.0.0.1:{server_syslog.getsockname()[1]},nohostname error;
    }}
}}
""")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(5)
        assert sock.recv(10) == b""                   # nothing listens upstream: the session ends
    server_log = tmp_path / "server.log"
    wait_for(lambda: "connect() failed (111" in (server_log.read_text() if server_log.exists() else ""),
             5, "the failure in the server's log")
    # the server's logs: info admits the error and the info lines, crit neither
    text = server_log.read_text()
    assert "[error]" in text and "[info]" in text
    assert "connect() failed" not in (tmp_path / "server_crit.log").read_text()
    assert "connect() failed" not in (tmp_path / "notice.log").read_text()   # not the main context's
    # the main context: notice.log has the start's notices, warn.log none of them; no info anywhere
    notice = (tmp_path / "notice.log").read_text()
    assert re.search(r"\[notice\] \d+#\d+: sheer/[.0-9]+ \(the configuration and logs of nginx/[.0-9]+\)",
                     notice)
    assert "[info]" not in notice
    assert "[notice]" not in (tmp_path / "warn.log").read_text()
    # syslog: nginx's header, then the error log's line whole
    received_lines = datagrams(main_syslog)
    for datagram in received_lines:
        match = SYSLOG.fullmatch(datagram.decode())
        assert match, datagram
        assert match.group(7) == socket.gethostname().lower() and match.group(8) == "lb"
        assert int(match.group(1)) == 16 * 8 + SEVERITY[match.group(10)]
    assert any(b"[notice]" in datagram for datagram in received_lines)
    server_lines = datagrams(server_syslog)
    assert all(re.fullmatch(rb"<187>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d nginx: .* \[error\] .*", line)
               for line in server_lines), server_lines     # local7.err, no hostname; no info lines

