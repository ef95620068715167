"""random [two [least_conn]]: weighted draws; with two, the less loaded of two distinct peers."""

from __future__ import annotations

from collections import Counter

from balancer_kit import assert_shares, balancer, host, pick, srv


def test_weights_within_tolerance() -> None:
    b = balancer("random", srv(1, weight=3), srv(2), srv(3, down=True), srv(4, weight=2), key=None)
    counts = Counter(pick(b) for _ in range(30000))
    assert counts["3"] == 0
    assert_shares(counts, {"1": 0.5, "2": 1 / 6, "4": 1 / 3}, 0.02)


def test_two_prefers_fewer_connections_per_weight() -> None:
    b = balancer("random_two", srv(1), srv(2), key=None)
    held = [b.get(b.start(), 1.0) for _ in range(100)]
    counts = Counter(host(peer) for peer in held)
    assert abs(counts["1"] - counts["2"]) <= 1          # two peers, least_conn: always balanced


def test_two_with_weights_and_max_conns() -> None:
    b = balancer("random_two", srv(1, weight=2), srv(2), srv(3, max_conns=5), key=None)
    held = [b.get(b.start(), 1.0) for _ in range(80)]
    counts = Counter(host(peer) for peer in held)
    assert counts["3"] == 5
    assert abs(counts["1"] - 2 * counts["2"]) <= 6


def test_all_unusable_and_single_peer() -> None:
    assert pick(balancer("random", srv(1, down=True), srv(2, down=True), key=None)) is None
    assert pick(balancer("random", srv(7), key=None)) == "7"


def test_a_request_tries_each_peer_once() -> None:
    b = balancer("random", srv(1), srv(2), srv(3), key=None)
    tried = b.start()
    seen = []
    while (peer := b.get(tried, 1.0)) is not None:
        seen.append(host(peer))
        b.free(peer, failed=True, now=1.0)
    assert sorted(seen) == ["1", "2", "3"]  # type: ignore[type-var]
