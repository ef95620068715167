"""TLS termination on `listen ... ssl` (in-process services, certificates made by trustme): what the
client negotiates, which certificate SNI picks, nginx's answers to plain HTTP and broken handshakes."""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sheer_process import wait_for
from test_http_harness import Harness, harness_fixture  # noqa: F401
from tls_kit import Files, body, client_context, connect, get, https, issue

pytestmark = pytest.mark.io

SHOW = 'return 200 "$scheme $https $ssl_protocol $ssl_server_name $ssl_session_reused $server_name\\n";'


@pytest.fixture(name="ca")
def ca_fixture() -> trustme.CA:
    return trustme.CA()


def serve(h: Harness, files: Files, extra: str = "", name: str = "a.test") -> int:
    port = h.listen("127.0.0.1")
    h.serve(f"""server {{ listen 127.0.0.1:{port} ssl; server_name {name};
                 ssl_certificate {files.cert}; ssl_certificate_key {files.key}; {extra}
                 location / {{ {SHOW} }} }}""")
    return port


def test_https_request_sees_scheme_and_ssl_variables(harness: Harness, ca: trustme.CA,
                                                     tmp_path: Path) -> None:
    files = issue(ca, tmp_path, "a.test")
    port = serve(harness, files)
    text, _, reused = https(port, "a.test", client_context(files.ca))
    assert text == "https on TLSv1.3 a.test . a.test\n"
    assert not reused


def test_sni_chooses_the_server_and_its_certificate(harness: Harness, ca: trustme.CA, tmp_path: Path) -> None:
    a = issue(ca, tmp_path, "a.test")
    b = issue(ca, tmp_path, "b.test")
    port = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{port} ssl; server_name a.test;
                 ssl_certificate {a.cert}; ssl_certificate_key {a.key}; location / {{ {SHOW} }} }}
        server {{ listen 127.0.0.1:{port} ssl; server_name b.test;
                 ssl_certificate {b.cert}; ssl_certificate_key {b.key}; location / {{ {SHOW} }} }}""")
    ctx = client_context(a.ca)          # verifies the hostname: only b.test's certificate passes for b.test
    assert https(port, "b.test", ctx)[0] == "https on TLSv1.3 b.test . b.test\n"
    assert https(port, "a.test", ctx)[0] == "https on TLSv1.3 a.test . a.test\n"
    with pytest.raises(ssl.SSLCertVerificationError):   # an unknown name gets the default server's
        connect(port, "c.test", ctx)


def _key_of(tls: ssl.SSLSocket) -> object:
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).public_key()


def test_rsa_and_ecdsa_certificates_in_one_server(harness: Harness, ca: trustme.CA, tmp_path: Path) -> None:
    ecdsa = issue(ca, tmp_path, "ec", "a.test")
    rsa_files = issue(ca, tmp_path, "rsa", "a.test", key_type=trustme.KeyType.RSA)
    port = harness.listen("127.0.0.1")
    harness.serve(f"""server {{ listen 127.0.0.1:{port} ssl; server_name a.test;
        ssl_certificate {rsa_files.cert}; ssl_certificate_key {rsa_files.key};
        ssl_certificate {ecdsa.cert}; ssl_certificate_key {ecdsa.key};
        location / {{ {SHOW} }} }}""")
    for suite, kind in (("ECDHE-ECDSA-AES128-GCM-SHA256", ec.EllipticCurvePublicKey),
                        ("ECDHE-RSA-AES128-GCM-SHA256", rsa.RSAPublicKey)):
        ctx = client_context(ecdsa.ca)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(suite)
        with connect(port, "a.test", ctx) as tls:
            assert isinstance(_key_of(tls), kind)
            assert tls.cipher()[0] == suite
            assert body(get(tls)) == "https on TLSv1.2 a.test . a.test\n"


def test_protocols_ciphers_and_alpn(harness: Harness, ca: trustme.CA, tmp_path: Path) -> None:
    files = issue(ca, tmp_path, "a.test")
    port = serve(harness, files, "ssl_protocols TLSv1.2; ssl_ciphers ECDHE-ECDSA-AES256-GCM-SHA384; "
                                 "ssl_prefer_server_ciphers on;")
    ctx = client_context(files.ca)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with connect(port, "a.test", ctx) as tls:
        assert tls.version() == "TLSv1.2"
        assert tls.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
        assert tls.selected_alpn_protocol() == "http/1.1"
    only_h2 = client_context(files.ca)
    only_h2.set_alpn_protocols(["h2"])
    with connect(port, "a.test", only_h2) as tls:      # no HTTP/2: no protocol is selected, HTTP/1.1 served
        assert tls.selected_alpn_protocol() is None
        assert body(get(tls)).startswith("https on TLSv1.2")
    tls13 = client_context(files.ca)
    tls13.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises(ssl.SSLError):
        connect(port, "a.test", tls13)
    wait_for(lambda: "SSL_do_handshake() failed" in harness.error_log(), what="the refused handshake logged")
    assert "[info]" in harness.error_log().split("SSL_do_handshake")[0].splitlines()[-1]


def test_plain_http_to_https_port_is_answered_400(harness: Harness, ca: trustme.CA, tmp_path: Path) -> None:
    port = serve(harness, issue(ca, tmp_path, "a.test"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"<center>The plain HTTP request was sent to HTTPS port</center>" in answer
    assert b"Connection: close" in answer
    log = harness.error_log()
    assert "[info]" in log and "client sent plain HTTP request to HTTPS port while reading client request " \
           "headers" in log


def test_garbage_and_stalled_handshakes_do_not_stall_the_worker(harness: Harness, ca: trustme.CA,
                                                                tmp_path: Path) -> None:
    files = issue(ca, tmp_path, "a.test")
    port = serve(harness, files, "client_header_timeout 1s;")
    garbage = socket.create_connection(("127.0.0.1", port), timeout=5)
    garbage.sendall(b"\x16\x03\x01\x00\x05hello, not a ClientHello")
    closed(garbage, 2)                            # an alert, then the close: never left hanging
    stalled = socket.create_connection(("127.0.0.1", port), timeout=5)
    stalled.sendall(b"\x16\x03\x01\x02\x00\x01")   # a record header and one byte of a 512-byte hello
    silent = socket.create_connection(("127.0.0.1", port), timeout=5)
    started = time.monotonic()
    # meanwhile the worker serves others
    assert https(port, "a.test", client_context(files.ca))[0].startswith("https on TLSv1.3")
    for sock in (stalled, silent):
        closed(sock, 5)                       # by sheer, at client_header_timeout
    assert 0.8 < time.monotonic() - started < 4.5
    log = harness.error_log()
    assert "SSL_do_handshake() failed (SSL: error:SSL routines::" in log
    assert "client timed out (110: Connection timed out) while SSL handshaking, client: 127.0.0.1" in log
    garbage.close()
    stalled.close()
    silent.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_handshakes_closed_without_a_request(harness: Harness, ca: trustme.CA, tmp_path: Path) -> None:
    """The lab's tls-handshake load, `openssl s_time -new` without `-www`: a full handshake, then the
    client closes before any request, with a reset (the server's session tickets unread) that often comes
    with its Finished. Every such connection ends and gives its slot back, and the worker goes on serving.
    Before: getpeername() failed on the reset socket, connection_made raised, and the slot (f794f32: s_time
    hangs once worker_connections are used up) or the loop's registration of a closed descriptor (65a5c52:
    hangs at once) was never given back; and uvloop, which calls a reader once for a socket in error and
    then stops polling it, never told the transport of a reset the handshake's last step had been woken by."""
    files = issue(ca, tmp_path, "a.test")
    port = serve(harness, files)
    service = harness.services[-1]
    run = subprocess.run(["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", "2"],
                         check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=15)
    counted = re.search(r"(\d+) connections in [0-9.]+s", run.stdout)
    assert counted is not None and int(counted.group(1)) > 20, run.stdout + run.stderr
    assert https(port, "a.test", client_context(files.ca))[0].startswith("https on TLSv1.3")
    wait_for(lambda: service.slots.used == 0 and not service.connections, what="every slot given back")
    assert service.connected >= int(counted.group(1)) + 1        # each counted, as nginx's stub_status does


def closed(sock: socket.socket, seconds: float) -> None:
    """Waits until the peer closed (EOF or reset); TimeoutError if it did not within `seconds`."""
    sock.settimeout(seconds)
    try:
        while sock.recv(100):
            pass
    except ConnectionResetError:
        pass


def test_concurrent_handshakes(harness: Harness, ca: trustme.CA, tmp_path: Path) -> None:
    files = issue(ca, tmp_path, "a.test")
    port = serve(harness, files)
    ctx = client_context(files.ca)
    results: list[str] = []

    def one() -> None:
        results.append(https(port, "a.test", ctx)[0])

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == ["https on TLSv1.3 a.test . a.test\n"] * 20


MTLS_SHOW = 'return 200 "$ssl_client_verify $ssl_client_s_dn\\n";'


def test_mutual_tls_refused_and_accepted(harness: Harness, ca: trustme.CA, tmp_path: Path) -> None:
    files = issue(ca, tmp_path, "a.test")
    clients = trustme.CA()
    client = issue(clients, tmp_path, "client", "client.test", common_name="client", organization_name="Org")
    stranger = issue(trustme.CA(), tmp_path, "stranger", "stranger.test", common_name="stranger")
    port, optional = harness.listen("127.0.0.1"), harness.listen("127.0.0.1")
    harness.serve(f"""
        ssl_certificate {files.cert}; ssl_certificate_key {files.key}; ssl_client_certificate {client.ca};
        server {{ listen 127.0.0.1:{port} ssl; ssl_verify_client on; ssl_verify_depth 2;
                 location / {{ {MTLS_SHOW} }} }}
        server {{ listen 127.0.0.1:{optional} ssl; ssl_verify_client optional;
                 location / {{ {MTLS_SHOW} }} }}""")
    with connect(port, "a.test", client_context(files.ca)) as tls:      # no certificate: nginx's 400
        answer = get(tls)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"<center>No required SSL certificate was sent</center>" in answer
    wait_for(lambda: "client sent no required SSL certificate while reading client request headers"
             in harness.error_log(), what="nginx's info line")
    with connect(port, "a.test", client_context(files.ca, client)) as tls:
        text = body(get(tls))
    verify, dn = text.split(" ", 1)
    assert verify == "SUCCESS"
    assert dn.startswith("CN=client,") and ",O=Org" in dn
    # a certificate of another CA: the handshake completes (nginx's verify callback), the request is
    # answered 400 "The SSL certificate error" and the verify error logged at info
    with connect(port, "a.test", client_context(files.ca, stranger)) as tls:
        answer = get(tls)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"<center>The SSL certificate error</center>" in answer
    line = ("client SSL certificate verify error: (21:unable to verify the first certificate) while reading "
            "client request headers, client: 127.0.0.1")
    wait_for(lambda: line in harness.error_log(), what="the refusal logged at info")
    assert https(optional, "a.test", client_context(files.ca))[0] == "NONE \n"
