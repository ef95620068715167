"""What a TLS connection's handshake settled, and nginx's $ssl_* variables made of it (the http and the
stream ssl modules share them: ngx_ssl_get_*). Pure: the io layer fills TlsInfo from the SSL object."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

# OpenSSL's X509_V_ERR_* that `ssl_verify_client optional_no_ca` lets pass (ngx_ssl_verify_error_optional)
OPTIONAL_NO_CA_ERRORS = frozenset({18, 19, 2, 20, 27, 21})

_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
          "stateOrProvinceName": "ST", "localityName": "L", "domainComponent": "DC",
          "emailAddress": "emailAddress", "serialNumber": "serialNumber", "givenName": "GN",
          "surname": "SN", "title": "title", "userId": "UID", "streetAddress": "street"}


class TlsInfo:
    """One connection's TLS facts, as nginx prints them. `cert` is the client certificate as Python's
    ssl decodes it and `der` its bytes (both None without one); `verify` OpenSSL's verify result."""

    __slots__ = ("cert", "cipher", "der", "more", "protocol", "server_name", "session_reused", "verify",
                 "verify_text")

    def __init__(self, protocol: str, cipher: str, server_name: str, session_reused: bool,
                 cert: dict[str, Any] | None = None, der: bytes | None = None, verify: int = 0,
                 verify_text: str = "", more: Callable[[str], str] | None = None) -> None:
        self.protocol = protocol
        self.cipher = cipher
        self.server_name = server_name
        self.session_reused = "r" if session_reused else "."
        self.cert = cert
        self.der = der
        self.verify = verify
        self.verify_text = verify_text
        # the facts asked of OpenSSL only when a variable wants them: ssl_session_id, ssl_ciphers,
        # ssl_curve, ssl_curves (the io layer's lookup on the connection's SSL object)
        self.more = more

    def ask(self, name: str) -> str:
        return "" if self.more is None else self.more(name)

    @property
    def client_verify(self) -> str:
        """$ssl_client_verify: NONE, SUCCESS or FAILED:reason (ngx_ssl_get_client_verify)."""
        if self.der is None:
            return "NONE"
        return "SUCCESS" if self.verify == 0 else f"FAILED:{self.verify_text}"

    def refusal(self, verify: str) -> int | None:
        """What nginx answers a request on this connection with, for the server's ssl_verify_client:
        495 (a certificate that did not verify), 496 (none sent where `on` wants one), or None."""
        if verify == "off":
            return None
        if self.der is not None and self.verify != 0 and (verify != "optional_no_ca"
                                                          or self.verify not in OPTIONAL_NO_CA_ERRORS):
            return 495
        if verify == "on" and self.der is None:
            return 496
        return None


def _dn(cert: dict[str, Any] | None, key: str, legacy: bool) -> str:
    """X509_NAME_print_ex(XN_FLAG_RFC2253): the last RDN first, joined by commas; legacy is
    X509_NAME_oneline: /CN=a/O=b in the certificate's order."""
    if not cert:
        return ""
    rdns = ["+".join(f"{_SHORT.get(k, k)}={v}" for k, v in rdn) for rdn in cert.get(key, ())]
    return "".join(f"/{rdn}" for rdn in rdns) if legacy else ",".join(reversed(rdns))


def _pem(info: TlsInfo) -> str:
    if info.der is None:
        return ""
    text = base64.b64encode(info.der).decode("ascii")
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def _time(info: TlsInfo, key: str) -> str:
    return str(info.cert.get(key, "")) if info.cert else ""


def _remain(info: TlsInfo) -> str:
    """$ssl_client_v_remain: whole days until the certificate ends, 0 once it has."""
    if not info.cert or "notAfter" not in info.cert:
        return ""
    end = parsedate_to_datetime(_rfc822(info.cert["notAfter"])).timestamp()
    return str(max(0, int((end - time.time()) // 86400)))


def _rfc822(asn1: str) -> str:
    """'Dec  7 14:07:46 2026 GMT' (ASN1_TIME_print) as RFC 822's 'Dec 7 2026 14:07:46 GMT' order."""
    month, day, clock, year, zone = asn1.split()
    return f"{day} {month} {year} {clock} {zone}"


def _serial(info: TlsInfo) -> str:
    return str(info.cert.get("serialNumber", "")) if info.cert else ""


# $ssl_* (and nginx's names for them): a getter of the connection's TlsInfo
VARIABLES: dict[str, Callable[[TlsInfo], str]] = {
    "ssl_protocol": lambda t: t.protocol,
    "ssl_cipher": lambda t: t.cipher,
    "ssl_ciphers": lambda t: t.ask("ssl_ciphers"),
    "ssl_curve": lambda t: t.ask("ssl_curve"),
    "ssl_curves": lambda t: t.ask("ssl_curves"),
    "ssl_server_name": lambda t: t.server_name,
    "ssl_session_reused": lambda t: t.session_reused,
    "ssl_session_id": lambda t: t.ask("ssl_session_id"),
    "ssl_alpn_protocol": lambda t: t.ask("ssl_alpn_protocol"),
    "ssl_client_verify": lambda t: t.client_verify,
    "ssl_client_s_dn": lambda t: _dn(t.cert, "subject", False),
    "ssl_client_i_dn": lambda t: _dn(t.cert, "issuer", False),
    "ssl_client_s_dn_legacy": lambda t: _dn(t.cert, "subject", True),
    "ssl_client_i_dn_legacy": lambda t: _dn(t.cert, "issuer", True),
    "ssl_client_serial": _serial,
    "ssl_client_fingerprint": lambda t: hashlib.sha1(t.der).hexdigest() if t.der else "",
    "ssl_client_raw_cert": _pem,
    "ssl_client_cert": lambda t: _pem(t)[:-1].replace("\n", "\n\t") if t.der else "",
    "ssl_client_escaped_cert": lambda t: quote(_pem(t), safe=""),
    "ssl_client_v_start": lambda t: _time(t, "notBefore"),
    "ssl_client_v_end": lambda t: _time(t, "notAfter"),
    "ssl_client_v_remain": _remain,
}
