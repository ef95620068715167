"""The kernel fast path's arithmetic: the kernel's jhash, nft's register layout and multiply-shift,
and tables whose every slot is what the user-space balancer picks."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from balancer_kit import balancer, srv

from sheer.config import load
from sheer.config.model import Balance, Upstream
from sheer.config.template import STREAM_VARIABLES, compile_template
from sheer.core.balancers import RoundRobin, request_key
from sheer.core.balancers.maglev import Maglev
from sheer.core.fastpath import MAX_SLOTS, Method, kernel_method, notices, smooth_round_robin, table
from sheer.core.flowkey import key_shape, maglev_key
from sheer.core.jhash import SEED, address_key, flow_key, jhash, slot
from sheer.core.variables import MappingSource


def test_jhash_is_lookup3_as_the_kernel_has_it() -> None:
    # Bob Jenkins' published values for hashlittle(), which include/linux/jhash.h reproduces
    assert jhash(b"", 0) == 0xDEADBEEF
    assert jhash(b"Four score and seven years ago", 0) == 0x17770551
    assert jhash(b"Four score and seven years ago", 1) == 0xCD628161


def test_slots_measured_against_nft() -> None:
    # nft `jhash ip saddr . udp sport mod 65537 seed 0x73686565` in the lab: these client ports of
    # 192.168.99.1 were steered to the map entries listed (tests/lab/test_fastpath.py checks 1,000)
    assert SEED == 0x73686565
    key = flow_key(bytes([192, 168, 99, 1]), 40000)
    assert key == bytes([192, 168, 99, 1, 0x9C, 0x40, 0, 0])
    assert slot(key, 65537) == (jhash(key) * 65537) >> 32
    assert all(0 <= slot(flow_key(bytes(4), p), 7) < 7 for p in range(0, 65536, 97))


def test_flow_key_and_key_shapes() -> None:
    assert address_key("192.0.2.1") == bytes([192, 0, 2, 1])
    assert address_key("2001:db8::1", 53)[16:] == b"\x00\x35\x00\x00"
    assert address_key("unix:") == b""

    def shape(text: str) -> str | None:
        return key_shape(compile_template(text, None, STREAM_VARIABLES))

    assert shape("$remote_addr") == "addr"
    assert shape("$remote_addr$remote_port") == "addr_port"
    assert shape("$remote_addr:$remote_port") == "addr_port"
    assert shape("${remote_addr}-${remote_port}") == "addr_port"
    assert shape("$remote_port$remote_addr") is None
    assert shape("x$remote_addr") is None
    assert shape("$binary_remote_addr") is None
    source = MappingSource({"remote_addr": "192.0.2.7", "remote_port": "4711"})
    assert maglev_key(compile_template("$remote_addr:$remote_port", None, STREAM_VARIABLES), source) == \
        flow_key(bytes([192, 0, 2, 7]), 4711)
    assert maglev_key(compile_template("$remote_port", None, STREAM_VARIABLES), source) == b"4711"


def test_request_key_of_maglev_is_binary() -> None:
    b = balancer("maglev", srv(1), srv(2), key="$remote_addr$remote_port")
    assert request_key(b.upstream, MappingSource({"remote_addr": "10.1.2.3", "remote_port": "53"})) == \
        bytes([10, 1, 2, 3, 0, 53, 0, 0])


def _maglev(*servers: object, key: str = "$remote_addr$remote_port") -> Maglev:
    b = balancer("maglev", *servers, key=key)  # type: ignore[arg-type]
    assert isinstance(b, Maglev)
    return b


def _user_space(b: Maglev, at: int) -> int | None:
    """What the balancer picks for a key that lands on slot `at`."""
    tried = b.start(1, b"")
    tried.hash = at
    peer = b.get(tried, 1000.0)
    if peer is None:
        return None
    b.free(peer, failed=False, now=1000.0)
    return peer.index


@pytest.mark.parametrize("down", [(), (1,), (0, 2), (0, 1, 2, 3)])
def test_maglev_table_is_the_user_space_choice_for_every_slot(down: tuple[int, ...]) -> None:
    servers = (srv(1), srv(2, weight=3), srv(3), srv(4, down=True))
    b = _maglev(*servers)
    for index in down:
        b.peers[index].health_down = True
    got = table(Method("jhash", "addr_port"), servers, [i in down for i in range(4)])
    assert not isinstance(got, str)
    assert got.modulus == b.size == 65537
    assert all(got.slots[at] == _user_space(b, at) for at in range(0, got.modulus, 7))
    assert 3 not in got.slots                                  # `down` in the config
    if set(down) >= {0, 1, 2}:
        assert got.filled == 0                                 # nothing usable: user space answers
    else:
        assert got.filled == got.modulus


def test_maglev_key_through_both_paths() -> None:
    servers = (srv(1), srv(2), srv(3))
    b = _maglev(*servers)
    got = table(Method("jhash", "addr_port"), servers, [False] * 3)
    assert not isinstance(got, str)
    for port in range(1000, 1400):
        key = flow_key(bytes([198, 51, 100, 9]), port)
        peer = b.get(b.start(1, key), 1000.0)
        assert peer is not None and got.slots[slot(key, got.modulus)] == peer.index


def test_a_single_server_fills_or_empties_the_table() -> None:
    one = (srv(1),)
    full = table(Method("jhash", "addr"), one, [False])
    empty = table(Method("jhash", "addr"), one, [True])
    assert not isinstance(full, str) and not isinstance(empty, str)
    assert set(full.slots) == {0} and set(empty.slots) == {None}


def test_round_robin_table_replays_nginx_smooth_weighted_round_robin() -> None:
    servers = (srv(1, weight=5), srv(2), srv(3, weight=2))
    got = table(Method("numgen_inc"), servers, [False] * 3)
    assert not isinstance(got, str)
    b = balancer("round_robin", *servers)
    assert isinstance(b, RoundRobin)
    picks = []
    for _ in range(got.modulus * 2):
        peer = b.get(b.start(), 1000.0)
        assert peer is not None
        b.free(peer, failed=False, now=1000.0)
        picks.append(peer.index)
    assert list(got.slots) * 2 == picks
    assert smooth_round_robin([0, 1, 2], [5, 1, 1]) == [0, 0, 1, 0, 2, 0, 0]   # nginx's documented order


def test_round_robin_skips_down_peers_and_falls_back_to_backups() -> None:
    servers = (srv(1, weight=2), srv(2, weight=4), srv(3, backup=True))
    halved = table(Method("numgen_inc"), servers, [True, False, False])
    backup = table(Method("numgen_inc"), servers, [True, True, False])
    nothing = table(Method("numgen_inc"), servers, [True, True, True])
    assert not isinstance(halved, str) and not isinstance(backup, str) and not isinstance(nothing, str)
    assert halved.slots == (1,)                                # weight 4 alone: common factor
    assert backup.slots == (2,)
    assert nothing.slots == ()


def test_random_table_holds_each_peer_by_weight() -> None:
    servers = (srv(1, weight=3), srv(2), srv(3, weight=2))
    got = table(Method("numgen_random"), servers, [False, False, False])
    assert not isinstance(got, str)
    assert Counter(got.slots) == {0: 3, 1: 1, 2: 2}


def test_weights_too_large_for_a_table() -> None:
    servers = (srv(1, weight=MAX_SLOTS), srv(2))
    why = table(Method("numgen_inc"), servers, [False, False])
    assert isinstance(why, str) and "entries" in why


@pytest.mark.parametrize(("method", "key", "why"), [
    ("least_conn", None, "active connections"),
    ("random_two", None, "two"),
    ("hash", "$remote_addr", "crc32"),
    ("consistent", "$remote_addr", "ketama"),
    ("maglev", "$remote_port", "address and port only"),
])
def test_methods_the_kernel_cannot_run(method: str, key: str | None, why: str) -> None:
    template = compile_template(key, None, STREAM_VARIABLES) if key else None
    upstream = Upstream("u", (srv(1), srv(2)), balance=Balance(method, template))  # type: ignore[arg-type]
    got = kernel_method(upstream)
    assert isinstance(got, str) and why in got


def test_max_conns_stays_in_user_space() -> None:
    upstream = Upstream("u", (srv(1, max_conns=10), srv(2)))
    got = kernel_method(upstream)
    assert isinstance(got, str) and "max_conns" in got
    assert kernel_method(replace(upstream, servers=(srv(1), srv(2)))) == Method("numgen_inc")


def test_notices_name_the_server_and_the_reason(tmp_path: Path) -> None:
    (tmp_path / "lb.conf").write_text("""
stream {
    upstream dns { least_conn; server 172.16.0.11:53; server 172.16.0.12:53; }
    upstream fast { hash $remote_addr maglev; server 172.16.0.13:53; server 172.16.0.14:53; }
    server {
        listen 53 udp; proxy_responses 0; proxy_bind $remote_addr:$remote_port transparent;
        dsr_without_health_check on; proxy_pass dns;
    }
    server {
        listen 54 udp; proxy_responses 0; proxy_bind $remote_addr:$remote_port transparent;
        dsr_without_health_check on; proxy_pass fast;
    }
}
""")
    found = notices(load(str(tmp_path / "lb.conf")))
    assert len(found) == 1
    assert "0.0.0.0:53 udp stays on the user-space path" in found[0] and "least_conn" in found[0]
