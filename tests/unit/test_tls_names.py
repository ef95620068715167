"""Whose certificate is it: X509_check_host's rules as nginx's proxy_ssl_verify applies them."""

from __future__ import annotations

import pytest

from sheer.core.tls_names import host_matches

CERT = {"subject": ((("commonName", "ignored.test"),),),
        "subjectAltName": (("DNS", "www.example.test"), ("DNS", "*.api.example.test"),
                           ("IP Address", "10.0.0.1"))}


@pytest.mark.parametrize(("name", "matches"), [
    ("www.example.test", True),
    ("WWW.Example.Test", True),
    ("v1.api.example.test", True),
    ("api.example.test", False),            # `*` is one whole label, never none
    ("a.b.api.example.test", False),        # ... and never two
    ("ignored.test", False),                # the CN is not looked at when there are DNS names
    ("10.0.0.1", True),
    ("10.0.0.2", False),
])
def test_subject_alt_names(name: str, matches: bool) -> None:
    assert host_matches(name, CERT) is matches


def test_common_name_without_dns_names() -> None:
    assert host_matches("old.test", {"subject": ((("commonName", "old.test"),),)})
    assert not host_matches("new.test", {"subject": ((("commonName", "old.test"),),)})
    assert not host_matches("10.0.0.1", {"subject": ((("commonName", "10.0.0.1"),),)})   # IPs: SAN only
