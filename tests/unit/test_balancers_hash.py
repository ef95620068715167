"""hash KEY: nginx's crc32 rehash walk over the weight range, pinned against a port of its C."""

from __future__ import annotations

import pytest
from balancer_kit import addresses, assert_shares, balancer, pick, srv, tally
from nginx_port import hash_peer

KEYS = [b"/index.html", b"user42", b"10.1.2.3", b"a", b"session=9f8e7d", b"GET /api/v1/items?id=7"]


@pytest.mark.parametrize("weights", [[1, 1, 1], [5, 1, 1], [1, 2, 3, 4], [3, 7]])
def test_peer_for_a_key_is_the_one_nginx_picks(weights: list[int]) -> None:
    b = balancer("hash", *(srv(i + 1, weight=w) for i, w in enumerate(weights)))
    for key in KEYS + addresses(200):
        expected = hash_peer(key, weights)
        assert expected is not None
        assert pick(b, key) == str(expected + 1), key


def test_pinned_values() -> None:
    # A few values written out, derived from nginx's formula (tests/unit/nginx_port.py).
    b = balancer("hash", srv(1), srv(2), srv(3))
    assert [pick(b, key) for key in (b"a", b"user42", b"/index.html")] == [
        str(hash_peer(key, [1, 1, 1]) + 1) for key in (b"a", b"user42", b"/index.html")]  # type: ignore[operator]


def test_down_peer_rehashes_like_nginx() -> None:
    weights = [1, 1, 1, 1]
    b = balancer("hash", srv(1), srv(2, down=True), srv(3), srv(4))
    for key in addresses(300):
        expected = hash_peer(key, weights, unusable=frozenset({1}))
        assert expected is not None
        assert pick(b, key) == str(expected + 1)


def test_same_key_same_peer_and_weights_hold() -> None:
    b = balancer("hash", srv(1, weight=2), srv(2), srv(3))
    assert {pick(b, b"client-7") for _ in range(20)} == {pick(b, b"client-7")}
    assert_shares(tally(b, addresses(20000)), {"1": 0.5, "2": 0.25, "3": 0.25}, 0.02)


def test_max_conns_moves_the_key_on() -> None:
    b = balancer("hash", srv(1, max_conns=1), srv(2, max_conns=1), srv(3, max_conns=1))
    key = b"k"
    first = b.get(b.start(0, key), 1.0)
    second = b.get(b.start(0, key), 1.0)
    assert first is not None and second is not None and first is not second


def test_empty_key_or_single_peer_is_round_robin() -> None:
    b = balancer("hash", srv(1), srv(2), srv(3))
    assert [pick(b, b"") for _ in range(6)] == ["1", "2", "3"] * 2
    assert pick(balancer("hash", srv(5)), b"x") == "5"


def test_all_down_is_no_live_upstreams() -> None:
    b = balancer("hash", srv(1, down=True), srv(2, down=True))
    assert pick(b, b"x") is None


def test_retries_never_repeat_a_peer() -> None:
    b = balancer("hash", srv(1), srv(2), srv(3))
    tried = b.start(0, b"retry-me")
    seen = []
    while (peer := b.get(tried, 1.0)) is not None:
        seen.append(peer.server.host)
        b.free(peer, failed=True, now=1.0)
    assert sorted(seen) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
