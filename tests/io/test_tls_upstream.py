"""`proxy_pass https://...`: SNI and the name checked, verification against proxy_ssl_trusted_certificate
(a wrong CA is nginx's log line and a 502), a client certificate, protocols, sessions reused."""

from __future__ import annotations

import http.client
import re
from pathlib import Path

import pytest
import trustme
from sheer_process import wait_for
from test_http_harness import Harness, harness_fixture  # noqa: F401
from tls_kit import issue

pytestmark = pytest.mark.io

SHOW = ('return 200 "$ssl_server_name|$ssl_session_reused|$ssl_protocol|$ssl_client_verify|'
        '$ssl_client_s_dn\\n";')


def get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read().decode()


def test_https_upstreams(harness: Harness, tmp_path: Path) -> None:
    ca = trustme.CA()
    upstream = issue(ca, tmp_path, "backend.test")
    other_ca = issue(trustme.CA(), tmp_path, "other")
    client = issue(ca, tmp_path, "proxy", "proxy.test", common_name="proxy")
    tls_port, front = harness.listen("127.0.0.11"), harness.listen("127.0.0.1")
    target = f"https://127.0.0.11:{tls_port}"
    harness.serve(f"""
        server {{ listen 127.0.0.11:{tls_port} ssl; server_name backend.test;
                 ssl_certificate {upstream.cert}; ssl_certificate_key {upstream.key};
                 ssl_client_certificate {client.ca}; ssl_verify_client optional;
                 location / {{ {SHOW} }} }}
        server {{ listen 127.0.0.1:{front};
            proxy_ssl_trusted_certificate {upstream.ca};
            location /verified/ {{ proxy_pass {target}; proxy_ssl_verify on; proxy_ssl_server_name on;
                                  proxy_ssl_name backend.test; }}
            location /nosni/ {{ proxy_pass {target}; }}
            location /tls12/ {{ proxy_pass {target}; proxy_ssl_protocols TLSv1.2;
                               proxy_ssl_session_reuse off; }}
            location /wrongca/ {{ proxy_pass {target}; proxy_ssl_verify on;
                                 proxy_ssl_trusted_certificate {other_ca.ca}; }}
            location /wrongname/ {{ proxy_pass {target}; proxy_ssl_verify on; proxy_ssl_name other.test; }}
            location /client/ {{ proxy_pass {target}; proxy_ssl_certificate {client.cert};
                                proxy_ssl_certificate_key {client.key}; }}
        }}""")
    assert get(front, "/verified/") == (200, "backend.test|.|TLSv1.3|NONE|\n")
    assert get(front, "/verified/") == (200, "backend.test|r|TLSv1.3|NONE|\n")    # proxy_ssl_session_reuse
    assert get(front, "/nosni/") == (200, "|.|TLSv1.3|NONE|\n")        # proxy_ssl_server_name off: no SNI
    assert get(front, "/tls12/") == (200, "|.|TLSv1.2|NONE|\n")
    assert get(front, "/tls12/") == (200, "|.|TLSv1.2|NONE|\n")        # no reuse when it is off
    status, text = get(front, "/client/")
    assert status == 200 and text.startswith("|.|TLSv1.3|SUCCESS|CN=proxy,")
    assert get(front, "/wrongca/")[0] == 502
    # trustme's chain ends with its root: OpenSSL's 19 (a root it does not trust) rather than 20
    line = re.compile(r"\[error\] .*upstream SSL certificate verify error: \(19:self-signed certificate in "
                      r"certificate chain\) while SSL handshaking to upstream, client: 127.0.0.1, server: , "
                      rf'request: "GET /wrongca/ HTTP/1.1", upstream: "https://127.0.0.11:{tls_port}/wrongca/"')
    wait_for(lambda: line.search(harness.error_log()), what="nginx's verify error")
    assert get(front, "/wrongname/")[0] == 502
    wait_for(lambda: 'upstream SSL certificate does not match "other.test" while SSL handshaking to upstream'
             in harness.error_log(), what="nginx's name error")
