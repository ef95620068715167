"""ip_hash: nginx's 89/113/6271 walk over the first three octets, pinned against a port of its C."""

from __future__ import annotations

import socket

import pytest
from balancer_kit import addresses, assert_shares, balancer, pick, srv, tally
from nginx_port import ip_hash_peer


def addr(text: bytes) -> bytes:
    family = socket.AF_INET6 if b":" in text else socket.AF_INET
    return socket.inet_pton(family, text.decode())


@pytest.mark.parametrize("weights", [[1, 1, 1], [5, 1, 1], [1, 2, 3, 4]])
def test_peer_for_a_client_is_the_one_nginx_picks(weights: list[int]) -> None:
    b = balancer("ip_hash", *(srv(i + 1, weight=w) for i, w in enumerate(weights)))
    clients = addresses(300) + [b"2001:db8::1", b"2001:db8:ffff::42", b"::1"]
    for client in clients:
        expected = ip_hash_peer(addr(client), weights)
        assert expected is not None
        assert pick(b, client) == str(expected + 1), client


def test_one_slash_24_goes_to_one_peer() -> None:
    b = balancer("ip_hash", srv(1), srv(2), srv(3))
    assert len({pick(b, f"203.0.113.{i}".encode()) for i in range(256)}) == 1


def test_down_peer_walks_on_like_nginx() -> None:
    b = balancer("ip_hash", srv(1), srv(2), srv(3, down=True))
    for client in addresses(300):
        expected = ip_hash_peer(addr(client), [1, 1, 1], unusable=frozenset({2}))
        assert pick(b, client) == str(expected + 1)  # type: ignore[operator]


def test_weights_within_tolerance() -> None:
    b = balancer("ip_hash", srv(1, weight=2), srv(2), srv(3))
    # one client per /24: the octet that matters varies
    clients = [f"{a}.{c}.{d}.1".encode() for a in (10, 172, 198) for c in range(256)
               for d in range(0, 256, 8)]
    assert_shares(tally(b, clients), {"1": 0.5, "2": 0.25, "3": 0.25}, 0.03)


def test_max_conns_and_not_an_address() -> None:
    b = balancer("ip_hash", srv(1, max_conns=1), srv(2, max_conns=1))
    first = b.get(b.start(0, b"192.0.2.1"), 1.0)
    second = b.get(b.start(0, b"192.0.2.1"), 1.0)
    assert first is not None and second is not None and first is not second
    assert pick(balancer("ip_hash", srv(1), srv(2)), b"unix:") in {"1", "2"}   # nginx's pseudo address
