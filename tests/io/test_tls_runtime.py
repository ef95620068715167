"""TLS with a real master and its workers: `sheer -t` on certificates and keys, session resumption
across workers and across a reload (ssl_session_ticket_key), certificates read anew on SIGHUP."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from sheer_process import Sheer, free_port, wait_for
from tls_kit import Files, client_context, connect, https, issue

pytestmark = pytest.mark.io

SHOW = 'return 200 "$pid $ssl_session_reused\\n";'


def conf(port: int, files: Files, extra: str = "", workers: int = 2) -> str:
    return f"""worker_processes {workers};
events {{ }}
http {{
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name a.test;
        ssl_certificate {files.cert};
        ssl_certificate_key {files.key};
        {extra}
        location / {{ {SHOW} }}
    }}
}}
"""


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "check.conf"
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "sheer", "-t", "-c", str(path)], capture_output=True,
                          check=False, text=True, timeout=30, stdin=subprocess.DEVNULL)


def test_t_names_a_missing_certificate_and_a_mismatched_key(tmp_path: Path) -> None:
    ca = trustme.CA()
    a = issue(ca, tmp_path, "a")
    b = issue(ca, tmp_path, "b")
    missing = Files(a.ca, tmp_path / "nope.crt", a.key)
    result = check(tmp_path, conf(8443, missing))
    assert result.returncode == 1
    assert (f'[emerg] {tmp_path}/check.conf:7: cannot load certificate "{tmp_path}/nope.crt": BIO_new_file() '
            "failed (2: No such file or directory)") in result.stderr
    result = check(tmp_path, conf(8443, Files(a.ca, a.cert, b.key)))
    assert result.returncode == 1
    assert f'SSL_CTX_use_PrivateKey("{b.key}") failed (SSL: ' in result.stderr
    assert "key values mismatch" in result.stderr
    assert "Traceback" not in result.stderr


def test_t_warns_of_a_readable_key_and_notices_http2(tmp_path: Path) -> None:
    files = issue(trustme.CA(), tmp_path, "a")
    files.key.chmod(0o644)
    text = conf(8443, files, "http2 on;").replace(" ssl;", " ssl http2;")
    result = check(tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert f'[warn] the certificate key "{files.key}" is readable by others (mode 0644)' in result.stderr
    assert '"listen ... http2" is accepted, but HTTP/2 is not served yet' in result.stderr
    assert '"http2 on" is accepted, but HTTP/2 is not served yet' in result.stderr
    files.key.chmod(0o600)
    assert "readable by others" not in check(tmp_path, text).stderr


def test_t_refuses_ssl_without_certificate_and_a_bad_ticket_key(tmp_path: Path) -> None:
    result = check(tmp_path, "events {} http { server { listen 127.0.0.1:8443 ssl; "
                             "location / { return 200; } } }\n")
    assert result.returncode == 1
    assert f'{tmp_path}/check.conf:1: no "ssl_certificate" is defined for the "listen ... ssl" directive' \
        in result.stderr
    files = issue(trustme.CA(), tmp_path, "a")
    (tmp_path / "ticket.key").write_bytes(b"x" * 20)
    result = check(tmp_path, conf(8443, files, f"ssl_session_ticket_key {tmp_path}/ticket.key;"))
    assert result.returncode == 1
    assert f'"{tmp_path}/ticket.key" must be 48 or 80 bytes' in result.stderr


@pytest.fixture(name="run")
def run_fixture(tmp_path: Path) -> object:
    started: list[Sheer] = []

    def run(text: str) -> Sheer:
        process = Sheer(tmp_path, text)
        started.append(process)
        return process.start(timeout=15)

    yield run
    for process in started:
        process.stop()


def reloaded(sheer: Sheer, workers: int = 2) -> None:
    old = set(sheer.workers())
    sheer.signal(signal.SIGHUP)
    wait_for(lambda: not old & set(sheer.workers()) and len(sheer.workers()) == workers, 15,
             "the new workers only")


def resumed_by(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession,
               times: int) -> tuple[set[str], set[str]]:
    """(the pids that answered, their $ssl_session_reused values) over `times` resumptions."""
    pids: set[str] = set()
    reused: set[str] = set()
    for _ in range(times):
        text, _, _ = https(port, "a.test", ctx, session=session)
        pid, flag = text.split()
        pids.add(pid)
        reused.add(flag)
    return pids, reused


def test_a_session_resumes_in_every_worker(tmp_path: Path, run: Callable[[str], Sheer]) -> None:
    files = issue(trustme.CA(), tmp_path, "a.test")
    port = free_port()
    sheer = run(conf(port, files))
    ctx = client_context(files.ca)
    text, session, reused = https(port, "a.test", ctx)
    assert text.split()[1] == "." and not reused and session is not None
    pids, flags = resumed_by(port, ctx, session, 40)
    assert flags == {"r"}                          # every resumption accepted ...
    assert pids == {str(pid) for pid in sheer.workers()}    # ... by both workers (tickets share keys)


def test_ticket_key_survives_a_reload_and_certificates_are_read_anew(tmp_path: Path,
                                                                     run: Callable[[str], Sheer]) -> None:
    ca = trustme.CA()
    files = issue(ca, tmp_path, "a.test")
    key = tmp_path / "ticket.key"
    key.write_bytes(os.urandom(80))
    port = free_port()
    sheer = run(conf(port, files, f"ssl_session_ticket_key {key};"))
    ctx = client_context(files.ca)
    _, session, _ = https(port, "a.test", ctx)
    assert session is not None
    with connect(port, "a.test", ctx) as tls:
        before = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"").serial_number
    renewed = issue(ca, tmp_path, "a.test")        # the same files, a new certificate in them
    assert renewed.cert == files.cert
    reloaded(sheer)
    with connect(port, "a.test", ctx) as tls:
        after = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"").serial_number
    assert after != before
    assert resumed_by(port, ctx, session, 5)[1] == {"r"}


def test_without_a_ticket_key_a_reload_forgets_sessions(tmp_path: Path, run: Callable[[str], Sheer]) -> None:
    files = issue(trustme.CA(), tmp_path, "a.test")
    port = free_port()
    sheer = run(conf(port, files))
    ctx = client_context(files.ca)
    _, session, _ = https(port, "a.test", ctx)
    assert session is not None
    assert resumed_by(port, ctx, session, 3)[1] == {"r"}
    reloaded(sheer)
    assert resumed_by(port, ctx, session, 3)[1] == {"."}     # new keys, as nginx without a key file
