"""nginx's TLS behaviours that nginx's own suite (ssl*.t, stream_ssl*.t) checks, with a real master:
client certificates judged per request (495, optional_no_ca, ssl_crl, the $ssl_client_* variables),
ssl_reject_handshake's alert, ssl_password_file, ssl_conf_command, `listen ... ssl proxy_protocol`, and
stream `return` over TLS with $ssl_session_id and ssl_alpn."""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sheer_process import Sheer, free_port, wait_for
from tls_kit import Files, body, client_context, connect, get, issue

pytestmark = pytest.mark.io


def _crl(ca: trustme.CA, revoked: Files, path: Path) -> Path:
    """A CRL of `ca` revoking the certificate in `revoked`."""
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    leaf = x509.load_pem_x509_certificate(revoked.cert.read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    entry = x509.RevokedCertificateBuilder().serial_number(leaf.serial_number).revocation_date(now).build()
    crl = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject).last_update(now)
           .next_update(now + datetime.timedelta(days=1)).add_revoked_certificate(entry)
           .sign(key, hashes.SHA256()))   # type: ignore[arg-type]
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path


def test_client_certificates_are_judged_per_request(run_sheer: Callable[..., Sheer], tmp_path: Path) -> None:
    ca, clients = trustme.CA(), trustme.CA()
    server = issue(ca, tmp_path, "a.test")
    good = issue(clients, tmp_path, "good", "good.test", common_name="good")
    bad = issue(clients, tmp_path, "bad", "bad.test", common_name="bad")
    stranger = issue(trustme.CA(), tmp_path, "stranger", "stranger.test", common_name="stranger")
    crl = _crl(clients, bad, tmp_path / "clients.crl")
    on, no_ca = free_port(), free_port()
    show = ('return 200 "$ssl_client_verify|$ssl_client_s_dn|$ssl_client_i_dn_legacy|$ssl_client_serial|'
            '$ssl_client_v_remain|$ssl_session_id|$ssl_curve\\n";')
    sheer = run_sheer(f"""
events {{}}
http {{
    ssl_certificate {server.cert}; ssl_certificate_key {server.key};
    server {{ listen 127.0.0.1:{on} ssl; ssl_verify_client on; ssl_client_certificate {good.ca};
             ssl_crl {crl}; location / {{ {show} }} }}
    server {{ listen 127.0.0.1:{no_ca} ssl; ssl_verify_client optional_no_ca; location / {{ {show} }} }}
}}
""")
    with connect(on, "a.test", client_context(server.ca, good)) as tls:
        verify, subject, issuer, serial, remain, session_id, curve = body(get(tls)).strip().split("|")
    assert verify == "SUCCESS" and issuer.startswith("/O=trustme") and "/OU=Testing CA #" in issuer
    assert subject.startswith("CN=good,") and int(serial, 16) > 0 and int(remain) >= 0
    assert len(session_id) == 64 and curve
    # revoked (ssl_crl) or of another CA: the handshake completes, the request gets nginx's 400 page
    unknown = "21:unable to verify the first certificate"
    for client, code in ((bad, "23:certificate revoked"), (stranger, unknown)):
        with connect(on, "a.test", client_context(server.ca, client)) as tls:
            answer = get(tls)
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"<center>The SSL certificate error</center>" in answer
        sheer.wait_log(f"client SSL certificate verify error: ({code}) while reading client request headers")
    # optional_no_ca: a certificate no CA vouches for is let through, its failure in $ssl_client_verify
    with connect(no_ca, "a.test", client_context(server.ca, stranger)) as tls:
        answer = get(tls)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body(answer).startswith("FAILED:unable to verify the first certificate|CN=stranger,")


def test_reject_handshake_password_file_and_conf_command(run_sheer: Callable[..., Sheer],
                                                         tmp_path: Path) -> None:
    ca = trustme.CA()
    plain = issue(ca, tmp_path, "a.test")
    other = issue(ca, tmp_path, "b.test")
    key = serialization.load_pem_private_key(plain.key.read_bytes(), None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(b"secret")))
    (tmp_path / "passwords").write_bytes(b"wrong\r\nsecret\r\n")
    port, conf = free_port(), free_port()
    run_sheer(f"""
events {{}}
http {{
    server {{ listen 127.0.0.1:{port} ssl; server_name default; ssl_reject_handshake on; }}
    server {{ listen 127.0.0.1:{port}; server_name a.test; ssl_certificate {plain.cert};
             ssl_certificate_key {locked}; ssl_password_file {tmp_path / "passwords"};
             location / {{ return 200 "$ssl_server_name\\n"; }} }}
    server {{ listen 127.0.0.1:{conf} ssl; ssl_certificate {plain.cert}; ssl_certificate_key {plain.key};
             ssl_conf_command Certificate {other.cert}; ssl_conf_command PrivateKey {other.key};
             location / {{ return 200 "ok\\n"; }} }}
}}
""")
    ctx = client_context(plain.ca)
    with connect(port, "a.test", ctx) as tls:           # the encrypted key, opened with the second line
        assert body(get(tls)) == "a.test\n"
    for name in ("default", "unknown.test"):            # nginx's unrecognized_name alert
        with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME|unrecognized name"):
            connect(port, name, ctx)
    ctx.check_hostname = False
    with connect(conf, "b.test", ctx) as tls:           # ssl_conf_command's certificate wins
        names = [value for rdn in tls.getpeercert()["subjectAltName"] for value in rdn[1:]]
        assert names == ["b.test"]


def test_proxy_protocol_before_the_handshake(run_sheer: Callable[..., Sheer], tmp_path: Path) -> None:
    ca = trustme.CA()
    files = issue(ca, tmp_path, "a.test")
    port = free_port()
    sheer = run_sheer(f"""
events {{}}
http {{
    server {{ listen 127.0.0.1:{port} ssl proxy_protocol; ssl_certificate {files.cert};
             ssl_certificate_key {files.key};
             location / {{ return 200 "$proxy_protocol_addr:$proxy_protocol_port $scheme\\n"; }} }}
}}
""")
    ctx = client_context(files.ca)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"PROXY TCP4 192.0.2.1 192.0.2.2 1234 443\r\n")
    with ctx.wrap_socket(sock, server_hostname="a.test") as tls:
        assert body(get(tls)) == "192.0.2.1:1234 https\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as broken:
        broken.sendall(b"PROXY nonsense\r\n")
        try:                       # closed with the bytes unread: a reset, or an end
            assert broken.recv(100) == b""
        except ConnectionResetError:
            pass
    sheer.wait_log('broken header: "PROXY nonsense')


def test_stream_return_over_tls_with_alpn(run_sheer: Callable[..., Sheer], tmp_path: Path) -> None:
    ca = trustme.CA()
    files = issue(ca, tmp_path, "a.test")
    tls_port, plain_port = free_port(), free_port()
    log = tmp_path / "stream.log"
    run_sheer(f"""
events {{}}
stream {{
    ssl_certificate {files.cert}; ssl_certificate_key {files.key};
    log_format s $status; access_log {log} s;
    server {{ listen 127.0.0.1:{tls_port} ssl; listen 127.0.0.1:{plain_port}; ssl_alpn first second;
             return "$ssl_protocol|$ssl_alpn_protocol|${{ssl_session_id}}"; }}
}}
""")
    ctx = client_context(files.ca)
    ctx.set_alpn_protocols(["wrong", "second"])
    with connect(tls_port, "a.test", ctx) as tls:
        protocol, alpn, session_id = tls.recv(200).decode().split("|")
    assert (protocol, alpn, len(session_id)) == ("TLSv1.3", "second", 64)
    with socket.create_connection(("127.0.0.1", plain_port), timeout=5) as sock:   # the same server, plain
        assert sock.recv(100) == b"||"
    refused = client_context(files.ca)                   # ALPN offered, none in common: nginx's alert
    refused.set_alpn_protocols(["wrong"])
    with pytest.raises((ssl.SSLError, ConnectionError)), connect(tls_port, "a.test", refused) as tls:
        tls.recv(100)
    wait_for(lambda: log.exists() and log.read_text().splitlines()[-1:] == ["500"], what="the 500 logged")
