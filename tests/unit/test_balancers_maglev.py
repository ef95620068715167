"""hash KEY maglev (sheer-only): the Maglev table is balanced, weighted, stable across processes,
and moves about 1/n of keys when a peer comes or goes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import Counter

import pytest
from balancer_kit import addresses, assert_shares, assign, balancer, moved, pick, srv, tally

from sheer.core.balancers.maglev import TABLE_SIZE, Maglev, table_size


def maglev(*servers: object) -> Maglev:
    b = balancer("maglev", *servers)  # type: ignore[arg-type]
    assert isinstance(b, Maglev)
    return b


def test_table_is_prime_sized_and_evenly_shared() -> None:
    b = maglev(*(srv(i) for i in range(1, 8)))
    assert b.size == TABLE_SIZE == 65537
    shares = Counter(peer.server.host for peer in b.table)
    assert max(shares.values()) - min(shares.values()) <= TABLE_SIZE // 100   # within 1%
    assert table_size(1000) == 100003                                         # > 100 entries per peer, prime


def test_weights_within_tolerance() -> None:
    b = maglev(srv(1, weight=3), srv(2), srv(3, weight=2))
    shares = Counter(peer.server.host for peer in b.table)
    assert abs(shares["10.0.0.1"] / b.size - 0.5) < 0.01
    assert_shares(tally(b, addresses(30000)), {"1": 0.5, "2": 1 / 6, "3": 1 / 3}, 0.02)


@pytest.mark.parametrize("count", [3, 5, 10])
def test_adding_or_removing_a_peer_moves_about_one_nth_of_keys(count: int) -> None:
    keys = addresses(20000)
    small = assign(maglev(*(srv(i) for i in range(1, count + 1))), keys)
    large = assign(maglev(*(srv(i) for i in range(1, count + 2))), keys)
    assert moved(small, large) <= 1 / (count + 1) + 0.03
    # removal: a middle peer goes away
    without = assign(maglev(*(srv(i) for i in range(1, count + 1) if i != 2)), keys)
    assert moved(small, without) <= 1 / count + 0.03


def test_a_down_peer_moves_only_its_own_keys_and_every_instance_agrees() -> None:
    keys = addresses(5000)
    before = assign(maglev(srv(1), srv(2), srv(3), srv(4)), keys)
    one = maglev(srv(1), srv(2, down=True), srv(3), srv(4))
    other = maglev(srv(1), srv(2, down=True), srv(3), srv(4))
    after = assign(one, keys)
    assert after == assign(other, keys)
    assert all(after[key] == before[key] for key in keys if before[key] != "2")
    assert "2" not in after.values()
    spread = Counter(after[key] for key in keys if before[key] == "2")
    assert min(spread.values()) > 0.2 * sum(spread.values())                  # spread over the others


def test_max_conns_and_tried_are_passed_over() -> None:
    b = maglev(srv(1, max_conns=1), srv(2, max_conns=1), srv(3, max_conns=1))
    held = [b.get(b.start(0, b"same"), 1.0) for _ in range(3)]
    assert len({id(peer) for peer in held}) == 3
    assert b.get(b.start(0, b"same"), 1.0) is None


_DUMP = """
import hashlib, sys
from balancer_kit import balancer, srv
b = balancer("maglev", srv(1), srv(2, weight=2), srv(3), srv(4))
print(hashlib.sha256(",".join(p.server.name for p in b.table).encode()).hexdigest())
"""


def test_table_is_identical_across_processes() -> None:
    here = os.path.dirname(__file__)
    digests = set()
    for seed in ("1", "2", "random"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=os.pathsep.join([here, *sys.path]))
        out = subprocess.run([sys.executable, "-c", _DUMP], env=env, capture_output=True, text=True,
                             check=True)
        digests.add(out.stdout.strip())
    b = balancer("maglev", srv(1), srv(2, weight=2), srv(3), srv(4))
    assert isinstance(b, Maglev)
    digests.add(hashlib.sha256(",".join(p.server.name for p in b.table).encode()).hexdigest())
    assert len(digests) == 1


def test_same_key_same_peer() -> None:
    b = maglev(srv(1), srv(2), srv(3))
    assert len({pick(b, b"192.0.2.7") for _ in range(10)}) == 1
