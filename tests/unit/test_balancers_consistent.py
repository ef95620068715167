"""hash KEY consistent: ketama points as nginx builds them, pinned against a port of its C."""

from __future__ import annotations

import pytest
from balancer_kit import addresses, assert_shares, assign, balancer, moved, pick, srv, tally
from nginx_port import chash_peer

from sheer.config.model import UpstreamServer


def names(servers: list[UpstreamServer]) -> list[tuple[str, int]]:
    return [(server.text, server.weight) for server in servers]


@pytest.mark.parametrize("servers", [
    [srv(1), srv(2), srv(3)],
    [srv(1, weight=3), srv(2), srv(3, weight=2), srv(4)],
    # as written in an http upstream without a port, and IPv6: nginx hashes the text as written
    [UpstreamServer("10.0.0.1", 80, text="10.0.0.1"), UpstreamServer("10.0.0.2", 80, text="10.0.0.2"),
     UpstreamServer("::1", 8080, text="[::1]:8080")],
])
def test_peer_for_a_key_is_the_one_nginx_picks(servers: list[UpstreamServer]) -> None:
    b = balancer("consistent", *servers)
    by_text = {server.text: server.host.rsplit(".", 1)[-1] if "." in server.host else server.host
               for server in servers}
    for key in [b"/index.html", b"user42", b"a"] + addresses(300):
        expected = chash_peer(key, names(servers))
        assert expected is not None
        peer = b.get(b.start(0, key), 1.0)
        assert peer is not None and peer.server.text == expected, (key, by_text)
        b.free(peer, failed=False, now=1.0)


def test_down_peer_moves_to_the_next_point_like_nginx() -> None:
    servers = [srv(1), srv(2, down=True), srv(3), srv(4)]
    b = balancer("consistent", *servers)
    for key in addresses(300):
        expected = chash_peer(key, names(servers), unusable=frozenset({"10.0.0.2:80"}))
        assert pick(b, key) == expected.split(":")[0].rsplit(".", 1)[1]  # type: ignore[union-attr]


def test_weights_within_tolerance() -> None:
    b = balancer("consistent", srv(1, weight=2), srv(2), srv(3))
    assert_shares(tally(b, addresses(20000)), {"1": 0.5, "2": 0.25, "3": 0.25}, 0.05)


@pytest.mark.parametrize("count", [3, 5, 8])
def test_adding_or_removing_a_peer_moves_about_one_nth_of_keys(count: int) -> None:
    keys = addresses(10000)
    small = assign(balancer("consistent", *(srv(i) for i in range(1, count + 1))), keys)
    large = assign(balancer("consistent", *(srv(i) for i in range(1, count + 2))), keys)
    fraction = moved(small, large)
    assert fraction <= 1 / (count + 1) + 0.05, fraction
    # only keys that now belong to the new peer moved
    assert all(large[key] == str(count + 1) for key in keys if small[key] != large[key])


def test_empty_key_is_round_robin() -> None:
    b = balancer("consistent", srv(1), srv(2))
    assert [pick(b, b"") for _ in range(4)] == ["1", "2", "1", "2"]
