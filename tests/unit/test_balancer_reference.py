"""Round robin's picks against a plain transcription of nginx's ngx_http_upstream_round_robin.c (peer by
peer, every test in the loop) over random weights, failures, `down`, backups, max_conns and health: the
quick pick (every primary usable at full weight) must choose exactly what the full one would."""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from sheer.config.model import Upstream, UpstreamServer
from sheer.core.balancers import Peer, RoundRobin
from sheer.runtime.board import BoardView


@dataclass
class Health:
    """A HealthView whose verdicts the test flips."""

    downs: set[int] = field(default_factory=set)

    def down(self, index: int) -> bool:
        return index in self.downs

    def any_down(self, count: int) -> bool:
        return any(index < count for index in self.downs)


class Reference:
    """nginx's round robin, one list per peer field, as ngx_http_upstream_round_robin.c reads."""

    def __init__(self, servers: tuple[UpstreamServer, ...], health: Health) -> None:
        self.servers, self.health = servers, health
        n = len(servers)
        self.effective = [server.weight for server in servers]
        self.current, self.conns, self.fails = [0] * n, [0] * n, [0] * n
        self.accessed, self.checked = [0.0] * n, [0.0] * n
        self.primary = [i for i, server in enumerate(servers) if not server.backup]
        self.backup = [i for i, server in enumerate(servers) if server.backup]

    def tries(self) -> int:
        return sum(not server.down for server in self.servers)

    def pick(self, group: list[int], tried: set[int], now: float) -> int | None:
        s = self.servers
        if group is self.primary and len(group) == 1:
            i = group[0]
            if s[i].down or i in self.health.downs or i in tried:
                return None
            return None if s[i].max_conns and self.conns[i] >= s[i].max_conns else i
        best, total = None, 0
        for i in group:
            if i in tried or s[i].down or i in self.health.downs:
                continue
            if (s[i].max_fails and self.fails[i] >= s[i].max_fails
                    and now - self.checked[i] <= s[i].fail_timeout):
                continue
            if s[i].max_conns and self.conns[i] >= s[i].max_conns:
                continue
            self.current[i] += self.effective[i]
            total += self.effective[i]
            if self.effective[i] < s[i].weight:
                self.effective[i] += 1
            if best is None or self.current[i] > self.current[best]:
                best = i
        if best is None:
            return None
        self.current[best] -= total
        if now - self.checked[best] > s[best].fail_timeout:
            self.checked[best] = now
        return best

    def get(self, tried: set[int], left: int, now: float) -> int | None:
        if left <= 0:
            return None
        i = self.pick(self.primary, tried, now)
        if i is None and self.backup:
            i = self.pick(self.backup, tried, now)
        if i is None:
            for j in self.primary:
                self.fails[j] = 0
            return None
        tried.add(i)
        self.conns[i] += 1
        return i

    def free(self, i: int, failed: bool, now: float) -> bool:
        server = self.servers[i]
        self.conns[i] -= 1
        if len(self.primary) == 1 and not server.backup:
            return False
        if failed:
            self.fails[i] += 1
            self.accessed[i] = self.checked[i] = now
            if server.max_fails:
                self.effective[i] = max(0, self.effective[i] - server.weight // server.max_fails)
                return self.fails[i] == server.max_fails
            return False
        if self.accessed[i] < self.checked[i]:
            self.fails[i] = 0
        return False


servers = st.builds(
    lambda weight, max_fails, fail_timeout, backup, down, max_conns: UpstreamServer(
        "10.0.0.1", 80, weight=weight, max_fails=max_fails, fail_timeout=fail_timeout,
        backup=backup, down=down, max_conns=max_conns),
    st.integers(1, 5) | st.integers(1, 250), st.integers(0, 3), st.sampled_from([1.0, 5.0, 10.0]),
    st.booleans() | st.just(False), st.sampled_from([False] * 5 + [True]),
    st.sampled_from([0] * 4 + [1, 2]))
# One step: how far the clock moves, the request's tries limit, which tries fail, whether the last peer
# stays busy until a later step, and a health verdict to flip (or none).
steps = st.tuples(st.sampled_from([0.0, 0.0, 0.5, 3.0, 11.0]), st.integers(0, 3),
                  st.lists(st.booleans(), max_size=3), st.booleans(), st.none() | st.integers(0, 5))


@settings(max_examples=400, deadline=None)
@given(st.lists(servers, min_size=1, max_size=6), st.lists(steps, max_size=60), st.booleans())
def test_round_robin_picks_as_nginx(config: list[UpstreamServer], script: list[tuple[float, int, list[bool],
                                    bool, int | None]], checked: bool) -> None:
    Peer.hand_set = False        # another test's hand-set health would keep the quick pick from running
    health = Health()
    real = RoundRobin(Upstream("u", tuple(config)), health if checked else None)
    ref = Reference(tuple(config), health)
    now = 1000.0
    busy: list[tuple[Peer, int]] = []
    for dt, limit, failures, hold, flip in script:
        now += dt
        if checked and flip is not None:
            health.downs ^= {flip}
        tried = real.start(limit)
        left = min(ref.tries(), limit) if limit else ref.tries()
        assert tried.left == left
        seen: set[int] = set()
        for fails in [*failures, False]:
            peer = real.get(tried, now)
            index = ref.get(seen, left, now)
            left -= 1
            assert (peer.index if peer is not None else None) == index
            if peer is None or index is None:
                break
            if fails or not hold:
                assert real.free(peer, failed=fails, now=now) == ref.free(index, fails, now)
            else:
                busy.append((peer, index))
            if not fails:
                break
        if busy and not hold:
            peer, index = busy.pop(0)
            assert real.free(peer, failed=False, now=now) == ref.free(index, False, now)
    assert [p.current_weight for p in real.peers] == ref.current
    assert [p.effective_weight for p in real.peers] == ref.effective


def test_a_peer_out_for_its_failures_at_full_weight_keeps_the_full_pick() -> None:
    """weight 1, max_fails 2: failures take nothing off the effective weight, but the second one
    keeps the peer out for fail_timeout; the quick pick must not come back before it is over."""
    config = tuple(UpstreamServer(f"10.0.0.{n}", 80, max_fails=2) for n in (1, 2))
    real, ref = RoundRobin(Upstream("u", config)), Reference(config, Health())
    for _ in range(8):
        peer, index = real.get(real.start(1), 1000.0), ref.get(set(), 1, 1000.0)
        assert peer is not None and peer.index == index
        assert real.free(peer, failed=index == 0, now=1000.0) == ref.free(index, index == 0, 1000.0)


def test_the_boards_one_look_per_pick_agrees_with_its_look_per_peer() -> None:
    mem = mmap.mmap(-1, 8)
    view = BoardView(mem, (0, 4))           # two checks of one upstream of 3 positions
    assert not view.any_down(3)
    for at, state in [(3, 1), (7, 2)]:      # bytes of no position of this upstream
        mem[at] = state
    assert not view.any_down(3)
    mem[5] = 2                              # the second check: position 1 is down
    assert view.any_down(3) and view.down(1) and not view.down(0)
