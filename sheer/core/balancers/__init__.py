"""nginx's load-balancing methods, one per module (as nginx has one module per algorithm), and
sheer's Maglev table. Each is a `Balancer`; all build on round robin's peer state
(`round_robin.py`, nginx's ngx_http_upstream_round_robin.c) and fall back to it where nginx's do."""

from __future__ import annotations

from random import Random

from sheer.config.model import Upstream
from sheer.core.balancers.consistent import ConsistentHash
from sheer.core.balancers.hash import Hash
from sheer.core.balancers.ip_hash import IpHash
from sheer.core.balancers.least_conn import LeastConn
from sheer.core.balancers.maglev import Maglev
from sheer.core.balancers.round_robin import (
    Balancer,
    HealthView,
    Overrides,
    Peer,
    RoundRobin,
    Tried,
    request_key,
)
from sheer.core.balancers.weighted_random import WeightedRandom


def make_balancer(upstream: Upstream, health: HealthView | None = None, rng: Random | None = None,
                  overrides: Overrides | None = None) -> Balancer:
    """The balancer `upstream`'s method names; `rng` seeds `random` (tests); `overrides`: the API's
    changes to its servers."""
    method = upstream.balance.method
    match method:
        case "round_robin":
            return RoundRobin(upstream, health, overrides)
        case "least_conn":
            return LeastConn(upstream, health, overrides)
        case "hash":
            return Hash(upstream, health, overrides)
        case "consistent":
            return ConsistentHash(upstream, health, overrides)
        case "maglev":
            return Maglev(upstream, health, overrides)
        case "ip_hash":
            return IpHash(upstream, health, overrides)
        case "random" | "random_two":
            return WeightedRandom(upstream, health, overrides, two=method == "random_two", rng=rng)


__all__ = ["Balancer", "ConsistentHash", "Hash", "HealthView", "IpHash", "LeastConn", "Maglev", "Overrides",
           "Peer", "RoundRobin", "Tried", "WeightedRandom", "make_balancer", "request_key"]
