"""Whether a peer's certificate is for a name (nginx's ngx_ssl_check_host, which is OpenSSL's
X509_check_host): the subjectAltName DNS and IP entries, the subject's CN only when there are no DNS
entries; a `*` only as the whole leftmost label, matching exactly one label."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any


def _dns_match(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern == name:
        return True
    if not pattern.startswith("*."):
        return False
    head, _, rest = name.partition(".")
    return bool(head) and rest == pattern[2:] and "." in rest


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def host_matches(name: str, cert: Mapping[str, Any]) -> bool:
    """`cert` as ssl.SSLObject.getpeercert() gives it (a verified certificate)."""
    alt = cert.get("subjectAltName", ())
    address = _ip(name)
    if address is not None:
        return any(kind == "IP Address" and _ip(value) == address for kind, value in alt)
    dns = [value for kind, value in alt if kind == "DNS"]
    if dns:
        return any(_dns_match(pattern, name) for pattern in dns)
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and _dns_match(value, name):
                return True
    return False


def strip_port(name: str) -> str:
    """proxy_ssl_name's value without a port: `host:port`, `[v6]:port` (nginx's ngx_..._ssl_name)."""
    if name.startswith("["):
        return name[:name.index("]") + 1] if "]" in name else name
    return name.rsplit(":", 1)[0] if name.count(":") == 1 else name
