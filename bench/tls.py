"""The TLS workloads (issue 14): new TLS 1.3 handshakes per second with an ECDSA P-256 certificate,
HTTPS keepalive requests through the transparent proxy, and bulk bytes through TLS termination. The
same configuration runs in sheer and in Debian's nginx; OpenSSL does the cryptography in both.

The certificate is made at run time with the `openssl` command (ECDSA P-256), in the lab's state
directory, before either proxy starts (`prepare`)."""

from __future__ import annotations

import re
import subprocess

from bench import upstreams
from bench.loads import Sample
from sheer.lab.errors import LabError
from sheer.lab.testing import Lab
from sheer.lab.topology import STATE_DIR, VIP, article

NAME = "bench.example.test"
CERTS = STATE_DIR / "bench-tls"
CERT, KEY = CERTS / "ecdsa.crt", CERTS / "ecdsa.key"
BULK_PATH = f"/bulk/{upstreams.BULK_FILE}"


def prepare(lab: Lab) -> None:
    """An ECDSA P-256 certificate for NAME (made once per lab state directory)."""
    if CERT.exists() and KEY.exists():
        return
    CERTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(KEY), "-out", str(CERT), "-days", "7", "-subj", f"/CN={NAME}",
                    "-addext", f"subjectAltName=DNS:{NAME}"], check=True, capture_output=True, timeout=30)
    KEY.chmod(0o600)


def _header(workers: int = 2) -> str:
    return f"user root;\nworker_processes {workers};\n\nevents {{\n    worker_connections 16384;\n}}\n\n"


def _servers() -> str:
    return "".join(f"\n        server {n.address()}:{upstreams.HTTP_PORT};" for n in article().upstreams)


SSL = f"""listen 443 ssl reuseport;
        ssl_certificate {CERT};
        ssl_certificate_key {KEY};
        ssl_protocols TLSv1.3;"""

HANDSHAKE = _header() + f"""http {{
    server {{
        {SSL}
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""

KEEPALIVE = _header() + f"""http {{
    upstream web {{{_servers()}
    }}
    server {{
        {SSL}
        location / {{
            proxy_bind $remote_addr transparent;
            proxy_pass http://web;
        }}
    }}
}}
"""
# as in the http workload: sheer keeps upstream connections per client address (nginx cannot safely)
KEEPALIVE_SHEER = KEEPALIVE.replace("""            proxy_pass http://web;""",
                                   """            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://web;""").replace(f"""server 172.16.0.14:{upstreams.HTTP_PORT};
    }}""", f"""server 172.16.0.14:{upstreams.HTTP_PORT};
        keepalive 64;
    }}""")

BULK = _header() + f"""http {{
    upstream bulk {{
        server 172.16.0.11:{upstreams.HTTP_PORT};
        keepalive 8;
    }}
    server {{
        {SSL}
        location / {{
            proxy_bind $remote_addr transparent;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://bulk;
        }}
    }}
}}
"""


def handshakes(lab: Lab, duration: float) -> Sample:
    """`openssl s_time -new`, two in parallel (one per client core): full TLS 1.3 handshakes, each on
    a new connection, nothing resumed; the sum of connections per real second."""
    seconds = max(1, round(duration))
    command = (f"for i in 1 2; do openssl s_time -connect {VIP}:443 -new -time {seconds} 2>&1 & done; wait")
    out = lab.run("client", "sh", "-c", command, timeout=duration + 30).stdout
    found = re.findall(r"(\d+) connections in ([\d.]+) real seconds", out)
    if len(found) != 2:
        raise LabError(f"openssl s_time printed no count:\n{out[-1500:]}")
    rate = sum(int(n) / max(float(t), 1e-9) for n, t in found)
    return Sample(rate, "handshakes/s", extra={"connections": sum(int(n) for n, _ in found)})


def bulk(lab: Lab, duration: float) -> Sample:
    """One HTTPS download after another (curl, one connection kept) of a file the upstream sends
    with sendfile: bytes through TLS termination, in Gbit/s."""
    seconds = max(1, round(duration))
    url = f"https://{NAME}{BULK_PATH}"
    command = (f"end=$(( $(date +%s) + {seconds} )); while [ $(date +%s) -lt $end ]; do "
               f"curl -s -o /dev/null -w '%{{size_download}} %{{time_total}}\\n' --cacert {CERT} "
               f"--resolve {NAME}:443:{VIP} {url} {url}; done")
    out = lab.run("client", "sh", "-c", command, timeout=duration + 60).stdout
    pairs = [(int(size), float(took)) for size, took in re.findall(r"^(\d+) ([\d.]+)$", out, re.MULTILINE)]
    if not pairs or any(size != upstreams.BULK_SIZE for size, _ in pairs):
        raise LabError(f"bulk downloads incomplete:\n{out[-1500:]}")
    total = sum(size for size, _ in pairs)
    took = sum(t for _, t in pairs)
    return Sample(total * 8 / took / 1e9, "Gbit/s", extra={"downloads": len(pairs)})
