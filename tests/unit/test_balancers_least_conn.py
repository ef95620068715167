"""least_conn: fewest connections per weight, ties by smooth weighted round robin (nginx)."""

from __future__ import annotations

from balancer_kit import balancer, host, pick, srv

from sheer.core.balancers import Peer


def hold(b: object, count: int) -> list[Peer]:
    held = []
    for _ in range(count):
        peer = b.get(b.start(), 1.0)  # type: ignore[attr-defined]
        assert peer is not None
        held.append(peer)
    return held


def test_idle_peers_tie_and_round_robin_breaks_the_tie() -> None:
    # Nothing held: every peer has 0 connections, so nginx's "many" branch is smooth weighted
    # round robin, with round robin's documented "a a b a c a a" for weights 5, 1, 1.
    b = balancer("least_conn", srv(1, weight=5), srv(2), srv(3))
    assert [pick(b) for _ in range(7)] == ["1", "1", "2", "1", "3", "1", "1"]


def test_held_connections_go_to_the_least_loaded_per_weight() -> None:
    b = balancer("least_conn", srv(1, weight=2), srv(2), srv(3))
    held = hold(b, 40)
    counts = {p: sum(1 for peer in held if host(peer) == p) for p in ("1", "2", "3")}
    assert counts == {"1": 20, "2": 10, "3": 10}       # conns/weight kept equal
    b.free(held[0], failed=False, now=1.0)
    freed = host(held[0])
    assert host(b.get(b.start(), 1.0)) == freed          # the one with a free slot


def test_down_and_max_conns() -> None:
    b = balancer("least_conn", srv(1, down=True), srv(2, max_conns=2), srv(3))
    held = hold(b, 6)
    assert sorted(host(p) for p in held) == ["2", "2", "3", "3", "3", "3"]


def test_backup_only_when_primaries_are_unavailable() -> None:
    b = balancer("least_conn", srv(1, max_conns=1), srv(2, max_conns=1), srv(9, backup=True))
    held = hold(b, 3)
    assert [host(p) for p in held].count("9") == 1
    assert held[-1].server.backup
    b.free(held[0], failed=False, now=1.0)
    assert host(b.get(b.start(), 1.0)) == host(held[0])  # a primary is free again: no backup


def test_failed_peer_is_out_for_fail_timeout() -> None:
    b = balancer("least_conn", srv(1), srv(2))
    assert pick(b, now=100.0, failed=True) == "1"
    assert {pick(b, now=105.0) for _ in range(4)} == {"2"}
    assert "1" in {pick(b, now=111.0) for _ in range(4)}


def test_single_peer_is_round_robin() -> None:
    b = balancer("least_conn", srv(1, max_fails=1))
    for _ in range(3):
        assert pick(b, failed=True) == "1"                # a lone peer is never disabled


def test_one_request_tries_each_peer_once() -> None:
    b = balancer("least_conn", srv(1), srv(2), srv(3))
    tried = b.start()
    seen = []
    while (peer := b.get(tried, 1.0)) is not None:
        seen.append(host(peer))
        b.free(peer, failed=True, now=1.0)
    assert sorted(seen) == ["1", "2", "3"]  # type: ignore[type-var]


def test_when_every_peer_failed_they_are_marked_live_again() -> None:
    b = balancer("least_conn", srv(1, max_fails=1), srv(2, max_fails=1))
    assert {pick(b, now=100.0, failed=True), pick(b, now=100.0, failed=True)} == {"1", "2"}
    assert pick(b, now=101.0) is None                # "no live upstreams", then quick recovery
    assert pick(b, now=101.5) in ("1", "2")          # within fail_timeout, tried again
