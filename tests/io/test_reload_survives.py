"""Whatever a reload brings (bad bytes, absurd numbers, deep nesting, a mangled file), the master
refuses it with one [emerg] line or takes it, and never dies: the old workers keep serving until a
good configuration replaces them. `sheer -t` says the same without a traceback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sheer_process import Sheer, free_port, wait_for

pytestmark = pytest.mark.io
REFUSED = "the new configuration is refused, the old one keeps serving"

NASTY = [b"\0", b"\xff\xfe", b"{", b"}", b";", b'"', b"'", b"\\", b"$", b"99999999999999999999", b"-1",
         b"0", b" weight=0", b"\n", b"#", b"include /nonexistent/*;", b"{" * 80, "é".encode(), b"\r",
         b"user r\0oot;", b"events { worker_connections 99999999999999999999; }", b"listen 1.2.3.4:0;"]

# each alone in an otherwise good configuration: inputs that killed the master or passed unchecked
KNOWN: dict[str, Callable[[bytes], bytes]] = {
    "NUL in user": lambda good: b"user r\0oot;\n" + good,
    "deep nesting": lambda good: good + b"http {" * 2000 + b"}" * 2000,
    "keepalive overflow": lambda good: good + b"http { upstream h { server 127.0.0.1:1; "
                                              b"keepalive 99999999999999999999; } }\n",
    "time overflow": lambda good: good.replace(b"stream {", b"stream { proxy_timeout 9999999999999999999y;"),
    "consistent hash too heavy": lambda good: good.replace(b"weight=2;", b"weight=999999999;").replace(
        b"upstream u {", b"upstream u { hash $remote_addr consistent;"),
}


def base(ret: int) -> str:
    return f"""worker_processes 1;
stream {{
    upstream u {{ server 127.0.0.11:1 weight=2; server 127.0.0.12:1; }}
    server {{
        listen 127.0.0.1:{ret};
        return "v1\\n";
    }}
}}
"""


def fetch(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        return sock.recv(100)


def mutate(text: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for where, cut, payload in edits:
        at = where % (len(text) + 1)
        text = text[:at] + payload + text[at + cut:]
    return text


class Reloader:
    def __init__(self, proxy: Sheer, ret: int) -> None:
        self.proxy, self.ret = proxy, ret
        self.good = (proxy.header + base(ret)).encode()

    def reload(self, data: bytes) -> None:
        """HUP with `data` as the configuration; back when the master refused it or started new workers."""
        refused = self.proxy.error_log().count(REFUSED)
        workers = set(self.proxy.workers())
        self.proxy.conf.write_bytes(data)
        self.proxy.signal(signal.SIGHUP)

        def settled() -> bool:
            self.proxy.check_running()
            refused_now = self.proxy.error_log().count(REFUSED) > refused
            return refused_now or bool(set(self.proxy.workers()) - workers)

        wait_for(settled, timeout=10, what="the reload")

    def survives(self, data: bytes) -> None:
        self.reload(data)
        # back to the good configuration: the master takes it and serves
        self.reload(self.good)
        wait_for(lambda: fetch(self.ret) == b"v1\n", what="serving after the bad reload")


@pytest.fixture(name="reloader")
def reloader_fixture(run_sheer: Callable[..., Sheer]) -> Reloader:
    ret = free_port()
    return Reloader(run_sheer(base(ret)), ret)


@pytest.mark.parametrize("case", list(KNOWN))
def test_known_killers_are_refused_and_the_old_workers_serve(reloader: Reloader, case: str) -> None:
    [worker] = reloader.proxy.workers()
    reloader.reload(reloader.proxy.header.encode() + KNOWN[case](base(reloader.ret).encode()))
    log = reloader.proxy.error_log()
    assert REFUSED in log.splitlines()[-1]
    assert "Traceback" not in log and "a bug in sheer" not in log
    assert reloader.proxy.workers() == [worker]
    assert fetch(reloader.ret) == b"v1\n"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 12),
                                st.one_of(st.sampled_from(NASTY), st.binary(max_size=6))),
                      min_size=1, max_size=3))
def test_mutated_configurations_never_kill_the_master(reloader: Reloader,
                                                      edits: list[tuple[int, int, bytes]]) -> None:
    # the error_log line stays: the test reads the master's lines there
    reloader.survives(reloader.proxy.header.encode() + mutate(base(reloader.ret).encode(), edits))
    assert "Traceback" not in reloader.proxy.error_log() + reloader.proxy.output()


@pytest.mark.parametrize("case", list(KNOWN))
def test_sheer_t_names_the_problem_without_a_traceback(tmp_path: Path, case: str) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_bytes(KNOWN[case](base(free_port()).encode()))
    done = subprocess.run([sys.executable, "-m", "sheer", "-t", "-c", str(conf)], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "a bug in sheer" not in done.stderr
    assert done.stderr.startswith("sheer: [emerg] ") and "test failed" in done.stderr
