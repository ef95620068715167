"""Smooth weighted round robin with nginx's semantics, on a fake clock."""

from __future__ import annotations

from sheer.config.model import Upstream, UpstreamServer
from sheer.core.balancers import Peer, RoundRobin


def upstream(*servers: UpstreamServer) -> RoundRobin:
    return RoundRobin(Upstream("u", servers))


def srv(n: int, **kw: object) -> UpstreamServer:
    return UpstreamServer(f"127.0.0.{n}", 53, **kw)  # type: ignore[arg-type]


def pick(rr: RoundRobin, now: float = 1000.0, *, failed: bool = False) -> str | None:
    """One request with a single try: get a peer, release it."""
    tried = rr.start()
    peer = rr.get(tried, now)
    if peer is None:
        return None
    rr.free(peer, failed=failed, now=now)
    return peer.server.host.rsplit(".", 1)[1]


def sequence(rr: RoundRobin, count: int, now: float = 1000.0) -> list[str | None]:
    return [pick(rr, now) for _ in range(count)]


def test_weights_5_1_1_give_nginx_documented_sequence() -> None:
    # ngx_http_upstream_round_robin.c: "a a b a c a a" for weights 5, 1, 1
    rr = upstream(srv(1, weight=5), srv(2), srv(3))
    assert sequence(rr, 14) == ["1", "1", "2", "1", "3", "1", "1"] * 2


def test_equal_weights_cycle_in_order() -> None:
    rr = upstream(srv(11), srv(12), srv(13), srv(14))
    assert sequence(rr, 8) == ["11", "12", "13", "14"] * 2


def test_down_is_skipped() -> None:
    rr = upstream(srv(1), srv(2, down=True), srv(3))
    assert sequence(rr, 4) == ["1", "3", "1", "3"]


def test_a_down_peer_is_not_a_try() -> None:
    """nginx's peers->tries counts the peers not down: one live peer's 404 under
    `proxy_next_upstream http_404` ends the request there (proxy_next_upstream.t, "all tried with down")."""
    rr = upstream(srv(1), srv(2, down=True))
    tried = rr.start()
    assert tried.left == 1
    assert rr.get(tried, 1000.0) is not None and rr.get(tried, 1000.0) is None
    assert upstream(srv(1), srv(2), srv(9, backup=True)).start().left == 3
    assert upstream(srv(1), srv(2), srv(3, down=True)).start(5).left == 2


def test_backup_only_when_every_primary_is_unavailable() -> None:
    rr = upstream(srv(1, max_fails=1), srv(2, max_fails=1), srv(9, backup=True))
    assert sequence(rr, 4) == ["1", "2", "1", "2"]
    assert pick(rr, 1000.0, failed=True) == "1"
    assert sequence(rr, 2, 1000.0) == ["2", "2"]  # 1 is out for fail_timeout, the backup is not needed
    assert pick(rr, 1000.0, failed=True) == "2"
    assert sequence(rr, 2, 1001.0) == ["9", "9"]  # every primary is out: the backup serves
    # fail_timeout passed: back to the primaries (their effective weight recovers, as in nginx)
    assert set(sequence(rr, 4, 1011.0)) == {"1", "2"}
    assert sequence(rr, 4, 1012.0) == ["1", "2", "1", "2"]


def test_all_down_primaries_fall_back_to_backup() -> None:
    rr = upstream(srv(1, down=True), srv(9, backup=True))
    assert sequence(rr, 2) == ["9", "9"]


def test_no_live_upstreams() -> None:
    rr = upstream(srv(1, down=True), srv(2, down=True))
    assert pick(rr) is None


def fail(rr: RoundRobin, host: str, now: float) -> bool:
    """Fail one request on `host` (trying peers until it comes up); returns free()'s answer."""
    for _ in range(len(rr.peers) * 4):
        tried = rr.start()
        peer = rr.get(tried, now)
        assert peer is not None
        if peer.server.host.endswith("." + host):
            return rr.free(peer, failed=True, now=now)
        rr.free(peer, failed=False, now=now)
    raise AssertionError(f"{host} never picked")


def test_max_fails_within_fail_timeout_disables_then_retries_after_fail_timeout() -> None:
    rr = upstream(srv(1, max_fails=2, fail_timeout=10.0), srv(2))
    assert fail(rr, "1", now=100.0) is False      # one failure of two: still in rotation
    assert "1" in sequence(rr, 4, now=101.0)
    assert fail(rr, "1", now=102.0) is True       # the second failure disables it
    assert sequence(rr, 6, now=103.0) == ["2"] * 6
    assert sequence(rr, 4, now=112.0) == ["2"] * 4  # 10s after the last failure: still out
    picked = sequence(rr, 2, now=112.5)             # more than fail_timeout later: tried again
    assert "1" in picked
    # the successful try marks it live again: fails reset, normal rotation
    assert rr.peers[0].fails == 0
    assert sorted(sequence(rr, 4, now=113.0)) == ["1", "1", "2", "2"]


def test_a_peer_failing_again_after_fail_timeout_is_disabled_again() -> None:
    rr = upstream(srv(1, max_fails=1, fail_timeout=10.0), srv(2))
    assert fail(rr, "1", now=100.0) is True
    assert sequence(rr, 3, now=105.0) == ["2"] * 3
    # the one trial after fail_timeout fails: out for another fail_timeout
    assert fail(rr, "1", now=111.0) is False     # already past max_fails: not newly disabled
    assert sequence(rr, 4, now=115.0) == ["2"] * 4
    assert "1" in sequence(rr, 4, now=121.5)


def test_failures_spread_beyond_fail_timeout_still_count_like_nginx() -> None:
    # nginx resets `fails` only after a success that follows the last check.
    rr = upstream(srv(1, max_fails=2, fail_timeout=1.0), srv(2))
    fail(rr, "1", now=100.0)
    fail(rr, "1", now=200.0)
    assert sequence(rr, 2, now=200.5) == ["2", "2"]


def test_max_fails_zero_never_disables() -> None:
    rr = upstream(srv(1, max_fails=0), srv(2))
    for now in (100.0, 100.1, 100.2):
        assert fail(rr, "1", now) is False
    assert "1" in sequence(rr, 2, now=100.3)


def test_single_peer_is_never_disabled() -> None:
    rr = upstream(srv(1, max_fails=1))
    for _ in range(5):
        assert rr.free(rr.get(rr.start(), 100.0), failed=True, now=100.0) is False  # type: ignore[arg-type]
    assert pick(rr, 100.1) == "1"


def test_single_peer_down_or_busy() -> None:
    assert pick(upstream(srv(1, down=True))) is None
    rr = upstream(srv(1, max_conns=1))
    held = rr.get(rr.start(), 1.0)
    assert held is not None
    assert rr.get(rr.start(), 1.0) is None
    rr.free(held, failed=False, now=1.0)
    assert rr.get(rr.start(), 1.0) is not None


def test_max_conns() -> None:
    rr = upstream(srv(1, max_conns=2), srv(2))
    held: list[Peer] = []
    for _ in range(4):
        peer = rr.get(rr.start(), 1.0)
        assert peer is not None
        held.append(peer)
    assert [p.server.host for p in held].count("127.0.0.1") == 2
    assert rr.peers[0].conns == 2
    peer = rr.get(rr.start(), 1.0)
    assert peer is not None and peer.server.host == "127.0.0.2"  # 1 is at max_conns
    for p in held:
        rr.free(p, failed=False, now=1.0)
    assert rr.peers[0].conns == 0


def test_one_request_never_tries_a_peer_twice_and_stops_after_all() -> None:
    rr = upstream(srv(1), srv(2), srv(3))
    tried = rr.start()
    hosts = []
    while (peer := rr.get(tried, 1.0)) is not None:
        hosts.append(peer.server.host)
        rr.free(peer, failed=True, now=1.0)
    assert sorted(hosts) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


def test_tries_limit() -> None:
    rr = upstream(srv(1, max_fails=0), srv(2, max_fails=0), srv(3, max_fails=0), srv(4, max_fails=0))
    tried = rr.start(tries_limit=2)
    assert tried.left == 2
    got = [rr.get(tried, 1.0), rr.get(tried, 1.0), rr.get(tried, 1.0)]
    assert got[0] is not None and got[1] is not None and got[2] is None
    assert got[0] is not got[1]
    assert rr.start(tries_limit=9).left == 4  # capped by the number of peers
    assert rr.start().left == 4


def test_failure_lowers_effective_weight_which_recovers() -> None:
    rr = upstream(srv(1, weight=4, max_fails=4), srv(2, weight=4, max_fails=4))
    fail(rr, "1", now=1.0)
    assert rr.peers[0].effective_weight == 3
    sequence(rr, 8, now=2.0)
    assert rr.peers[0].effective_weight == 4


def test_a_lone_primary_is_never_disabled_even_with_a_backup() -> None:
    # nginx's peers->single counts primary servers only: failures of the lone primary are not
    # counted, so traffic never moves to the backup because of max_fails.
    rr = upstream(srv(1, max_fails=1), srv(9, backup=True))
    for now in (1000.0, 1000.1, 1000.2):
        assert pick(rr, now, failed=True) == "1"
    assert sequence(rr, 3, 1000.3) == ["1", "1", "1"]


def test_when_every_peer_failed_nothing_is_picked_and_they_are_marked_live_again() -> None:
    """nginx: "all peers failed, mark them as live for quick recovery" (fails reset to 0)."""
    rr = upstream(srv(1, max_fails=1, fail_timeout=10.0), srv(2, max_fails=1, fail_timeout=10.0))
    assert pick(rr, 1000.0, failed=True) == "1"
    assert pick(rr, 1000.0, failed=True) == "2"
    assert pick(rr, 1001.0) is None                 # both out: "no live upstreams" ...
    assert [p.fails for p in rr.peers] == [0, 0]    # ... and both marked live again
    assert all(h in ("1", "2") for h in sequence(rr, 4, 1001.5))   # within fail_timeout, tried again


def test_failed_backups_too_mark_the_primaries_live_again() -> None:
    rr = upstream(srv(1, max_fails=1), srv(2, max_fails=1), srv(9, backup=True, max_fails=1),
                  srv(10, backup=True, max_fails=1))
    assert [pick(rr, 1000.0, failed=True) for _ in range(2)] == ["1", "2"]
    assert [pick(rr, 1000.0, failed=True) for _ in range(2)] == ["9", "10"]   # backups serve, and fail
    assert pick(rr, 1000.0) is None
    assert [p.fails for p in rr.primary] == [0, 0]
    assert [p.fails for p in rr.backup] == [1, 1]   # nginx resets the primaries only
    assert pick(rr, 1000.0) in ("1", "2")
