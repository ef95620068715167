"""ssl_preread's ClientHello reading against ClientHellos made by OpenSSL itself (through Python's ssl
module, in memory), and nginx's verdicts on what is not one."""

from __future__ import annotations

import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sheer.core.tls_preread import ClientHello, Declined, NeedMore, preread


def hello(name: str | None = "a.test", alpn: list[str] | None = None,
          maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.maximum_version = maximum
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_server_name_alpn_and_version() -> None:
    found = preread(hello("a.test", ["h2", "http/1.1"]))
    assert found == ClientHello(0x0304, "a.test", ("h2", "http/1.1"))
    assert (found.protocol, found.alpn_protocols) == ("TLSv1.3", "h2,http/1.1")


def test_tls12_hello_without_sni() -> None:
    found = preread(hello(None, maximum=ssl.TLSVersion.TLSv1_2))
    assert isinstance(found, ClientHello)
    assert (found.protocol, found.server_name, found.alpn) == ("TLSv1.2", "", ())


def test_every_prefix_needs_more() -> None:
    data = hello("b.test")
    for end in range(len(data)):
        assert preread(data[:end]) == NeedMore()
    assert isinstance(preread(data), ClientHello)


def test_a_hello_split_over_records() -> None:
    data = hello("split.test")
    body = data[5:]
    records = b"".join(b"\x16\x03\x01" + len(part).to_bytes(2, "big") + part
                       for part in (body[:10], body[10:100], body[100:]))
    assert preread(records) == preread(data)


@pytest.mark.parametrize(("data", "reason"), [
    (b"GET / HTTP/1.1\r\n\r\n", "not a handshake"),
    (b"G", "not a handshake"),
    (b"\x16\x02\x00\x00\x01x", "unsupported SSL version"),
    (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", "not a client hello"),
    (b"\x16\x03\x01\x00\x06\x01\x00\x00\x02\x03\x03", "failed to parse handshake"),
])
def test_nginx_declines(data: bytes, reason: str) -> None:
    assert preread(data) == Declined(reason)


def test_sslv2_hello_gives_its_version() -> None:
    assert preread(b"\x80\x2e\x01\x03\x01" + b"\x00" * 40) == ClientHello(0x0301)


@given(st.binary(max_size=300))
def test_any_bytes_get_a_verdict(data: bytes) -> None:
    assert isinstance(preread(data), NeedMore | Declined | ClientHello)


def test_a_hello_longer_than_the_preread_buffer_fills_it_even_when_whole() -> None:
    """nginx reads at most preread_buffer_size bytes: a whole ClientHello past it is "buffer full"."""
    from sheer.core.tls_preread import bounded

    whole = hello("a.example")
    assert isinstance(bounded(whole, len(whole)), ClientHello)
    assert bounded(whole, 42) is None
