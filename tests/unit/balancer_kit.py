"""Helpers for the balancer tests: upstreams of a given method, one-try picks, tallies."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from random import Random

from sheer.config.model import Balance, BalanceMethod, Upstream, UpstreamServer
from sheer.config.template import STREAM_VARIABLES, compile_template
from sheer.core.balancers import Balancer, Peer, make_balancer

NOW = 1000.0


def srv(n: int, **kw: object) -> UpstreamServer:
    return UpstreamServer(f"10.0.0.{n}", 80, text=f"10.0.0.{n}:80", **kw)  # type: ignore[arg-type]


def balancer(method: BalanceMethod, *servers: UpstreamServer, key: str | None = "$remote_addr",
             seed: int = 1) -> Balancer:
    template = compile_template(key, None, STREAM_VARIABLES) if key is not None else None
    return make_balancer(Upstream("u", servers, balance=Balance(method, template)), rng=Random(seed))


def host(peer: Peer | None) -> str | None:
    return None if peer is None else peer.server.host.rsplit(".", 1)[1]


def pick(b: Balancer, key: bytes = b"", now: float = NOW, *, failed: bool = False) -> str | None:
    """One request with one try: get a peer, release it."""
    peer = b.get(b.start(0, key), now)
    if peer is not None:
        b.free(peer, failed=failed, now=now)
    return host(peer)


def tally(b: Balancer, keys: Iterable[bytes], now: float = NOW) -> Counter[str | None]:
    return Counter(pick(b, key, now) for key in keys)


def addresses(count: int, start: int = 0) -> list[bytes]:
    """Distinct client addresses across many /24s."""
    return [f"198.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}".encode() for i in range(start, start + count)]


def assign(b: Balancer, keys: Iterable[bytes]) -> dict[bytes, str | None]:
    return {key: pick(b, key) for key in keys}


def moved(before: dict[bytes, str | None], after: dict[bytes, str | None]) -> float:
    return sum(before[key] != after[key] for key in before) / len(before)


def assert_shares(counts: Counter[str | None], expected: dict[str, float], tolerance: float) -> None:
    total = sum(counts.values())
    for name, share in expected.items():
        got = counts[name] / total
        assert abs(got - share) <= tolerance, (name, got, share, counts)
