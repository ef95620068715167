"""TLS through sheer in the lab, with real clients (curl, openssl s_client) and the upstreams' own logs:
termination with the client's address kept (proxy_bind $remote_addr transparent), passthrough routed
by name (ssl_preread), session resumption across workers, mutual TLS refused and accepted."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from sheer.lab import configs
from sheer.lab.testing import Lab
from sheer.lab.topology import VIP as _VIP

pytestmark = pytest.mark.lab

CLIENT = "192.168.99.1"
VIP = str(_VIP)
UPSTREAMS = "server 172.16.0.11; server 172.16.0.12; server 172.16.0.13; server 172.16.0.14;"


class Pki:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        ca, clients = trustme.CA(), trustme.CA()
        self.ca = self._write("ca.pem", ca.cert_pem.bytes())
        self.client_ca = self._write("client-ca.pem", clients.cert_pem.bytes())
        for name in ("www.example.test", "a.example.test", "b.example.test"):
            leaf = ca.issue_cert(name)
            self._write(f"{name}.crt", b"".join(p.bytes() for p in leaf.cert_chain_pems))
            self._write(f"{name}.key", leaf.private_key_pem.bytes(), 0o600)
        client = clients.issue_cert("client.example.test", common_name="lab client")
        self.client_cert = self._write("client.crt", client.cert_chain_pems[0].bytes())
        self.client_key = self._write("client.key", client.private_key_pem.bytes(), 0o600)

    def _write(self, name: str, data: bytes, mode: int = 0o644) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        path.chmod(mode)
        return path

    def pair(self, name: str) -> str:
        return f"ssl_certificate {self.dir}/{name}.crt; ssl_certificate_key {self.dir}/{name}.key;"


@pytest.fixture(scope="module")
def pki(lab: Lab) -> Iterator[Pki]:
    yield Pki(Path(lab.state_dir) / "tls")


def curl(lab: Lab, pki: Pki, url: str, *extra: str) -> str:
    host = url.split("/")[2].split(":")[0]
    return lab.run("client", "curl", "-s", "-m", "5", "--cacert", str(pki.ca), "--resolve",
                   f"{host}:443:{VIP}", *extra, url).stdout


def s_client(lab: Lab, pki: Pki, name: str, request: str, *extra: str) -> str:
    command = (f"printf {shlex.quote(request)} | openssl s_client -connect {VIP}:443 -servername {name} "
               f"-CAfile {pki.ca} -ign_eof {' '.join(extra)} 2>&1")
    return lab.run("client", "sh", "-c", command, timeout=15).stdout


def test_termination_keeps_the_client_address(lab: Lab, pki: Pki) -> None:
    config = configs.HEADER + f"""http {{
    upstream http_upstreams {{ {UPSTREAMS} }}
    server {{
        listen 443 ssl;
        server_name www.example.test;
        {pki.pair("www.example.test")}
        location / {{
            proxy_bind $remote_addr transparent;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_pass http://http_upstreams;
        }}
    }}
}}
"""
    with lab.applied("transparency", config), lab.proxy(config):
        mark = lab.mark()
        bodies = [curl(lab, pki, "https://www.example.test/") for _ in range(4)]
        assert sorted(body.split(".")[0] for body in bodies) == [
            "Hello from up1", "Hello from up2", "Hello from up3", "Hello from up4"], bodies
        assert all(f"You connected from {CLIENT}:" in body for body in bodies), bodies
        seen = [s for s in lab.seen(mark) if s.protocol == "http"]
        assert len(seen) == 4 and {s.src for s in seen} == {CLIENT}      # the upstreams' own logs
        plain = lab.run("client", "curl", "-s", "-m", "5", f"http://{VIP}:443/").stdout
        assert "The plain HTTP request was sent to HTTPS port" in plain


def test_preread_routes_two_names_to_two_upstreams(lab: Lab, pki: Pki) -> None:
    # a.example.test's TLS ends at a terminator that proxies to up1, b.example.test's at one for up2:
    # s_client verifies each name's own certificate, so the bytes went through the preread untouched
    config = configs.HEADER + f"""stream {{
    upstream a.example.test {{ server 127.0.0.1:8441; }}
    upstream b.example.test {{ server 127.0.0.1:8442; }}
    server {{
        listen 443;
        ssl_preread on;
        proxy_pass $ssl_preread_server_name;
    }}
}}
http {{
    server {{
        listen 127.0.0.1:8441 ssl;
        {pki.pair("a.example.test")}
        location / {{ proxy_pass http://172.16.0.11; }}
    }}
    server {{
        listen 127.0.0.1:8442 ssl;
        {pki.pair("b.example.test")}
        location / {{ proxy_pass http://172.16.0.12; }}
    }}
}}
"""
    with lab.proxy(config):
        for name, node in (("a.example.test", "up1"), ("b.example.test", "up2")):
            out = s_client(lab, pki, name, f"GET / HTTP/1.0\r\nHost: {name}\r\n\r\n")
            assert "Verify return code: 0 (ok)" in out, out
            assert f"Hello from {node}." in out, out


def test_sessions_resume_across_workers_and_mutual_tls(lab: Lab, pki: Pki) -> None:
    header = configs.HEADER.replace("worker_processes 1;", "worker_processes 2;")
    config = header + f"""http {{
    server {{
        listen 443 ssl;
        server_name www.example.test;
        {pki.pair("www.example.test")}
        ssl_client_certificate {pki.client_ca};
        ssl_verify_client optional;
        location /pid {{ return 200 "worker $pid $ssl_session_reused\\n"; }}
        location /mtls {{ return 200 "$ssl_client_verify $ssl_client_s_dn\\n"; }}
    }}
    server {{
        listen 8443 ssl;
        {pki.pair("www.example.test")}
        ssl_client_certificate {pki.client_ca};
        ssl_verify_client on;
        location / {{ return 200 "$ssl_client_verify\\n"; }}
    }}
}}
"""
    session = Path(lab.state_dir) / "tls" / "session.pem"
    request = "GET /pid HTTP/1.0\r\nHost: www.example.test\r\n\r\n"
    with lab.proxy(config):
        first = s_client(lab, pki, "www.example.test", request, f"-sess_out {session}")
        assert "New, TLSv1.3" in first and "worker " in first, first
        pids: set[str] = set()
        for _ in range(12):
            out = s_client(lab, pki, "www.example.test", request, f"-sess_in {session}")
            assert "Reused, TLSv1.3" in out, out
            found = re.search(r"worker (\d+) r", out)
            assert found, out
            pids.add(found.group(1))
        assert len(pids) == 2, pids          # both workers resumed what one of them issued
        # mutual TLS: refused without a certificate (nginx's 400), accepted with one
        url = "https://www.example.test:8443/"
        resolve = ("--resolve", f"www.example.test:8443:{VIP}")
        refused = lab.run("client", "curl", "-s", "-m", "5", "--cacert", str(pki.ca), *resolve, url).stdout
        assert "No required SSL certificate was sent" in refused, refused
        accepted = lab.run("client", "curl", "-s", "-m", "5", "--cacert", str(pki.ca), *resolve,
                           "--cert", str(pki.client_cert), "--key", str(pki.client_key), url).stdout
        assert accepted == "SUCCESS\n"
        dn = curl(lab, pki, "https://www.example.test/mtls", "--cert", str(pki.client_cert), "--key",
                  str(pki.client_key))
        assert dn.startswith("SUCCESS CN=lab client,"), dn
