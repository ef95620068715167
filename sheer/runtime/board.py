"""Peer health shared by every process of one generation: one byte per checked peer.

The master maps an anonymous MAP_SHARED region before it forks the workers and the health
checker, so all of them see the same bytes: the checker writes a peer's `Health`, every
worker's balancer reads it on each pick. A byte needs no lock (one writer, single-byte
stores are atomic). A reload makes a new board for the new generation; old workers keep
reading the old one while they drain.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

from sheer.config.health import HealthCheck
from sheer.config.model import Config, Upstream, UpstreamServer
from sheer.core.health import Health
from sheer.core.peers import positions, slot_of


@dataclass(frozen=True)
class CheckedGroup:
    """One `health_check` directive: the upstream it checks and where its bytes start."""

    upstream: Upstream
    check: HealthCheck
    offset: int
    where: str                  # how the log names the check: "stream server 0.0.0.0:53 udp"

    def target(self, server: UpstreamServer) -> tuple[str, int]:
        return server.host, self.check.port or server.port


def checked_groups(config: Config) -> list[CheckedGroup]:
    groups: list[CheckedGroup] = []
    offset = 0
    for server in (config.stream.servers if config.stream else ()):
        if server.health_check is not None and server.upstream is not None:
            where = f"stream server {server.listens[0]}"
            groups.append(CheckedGroup(server.upstream, server.health_check, offset, where))
            offset += positions(server.upstream)
    for http_server in (config.http.servers if config.http else ()):
        for location in http_server.locations:
            if location.health_check is not None and location.proxy_pass is not None:
                upstream = location.proxy_pass.upstream
                if upstream is None:
                    continue
                where = f"http server {http_server.listens[0]} location {location.path}"
                groups.append(CheckedGroup(upstream, location.health_check, offset, where))
                offset += positions(upstream)
    return groups


def _key(group: CheckedGroup, index: int) -> tuple[str, str, str]:
    """A peer across reloads: its address, or for a slot of `server NAME resolve`, the slot."""
    upstream = group.upstream
    found = slot_of(upstream, index)
    if found is None:
        return upstream.name, group.where, upstream.servers[index].name
    return upstream.name, group.where, f"{upstream.resolve[found[0]].text} #{found[1]}"


class BoardView:
    """What one upstream's balancer consults: down if any check of that upstream says so."""

    __slots__ = ("mem", "offsets")

    def __init__(self, mem: mmap.mmap, offsets: tuple[int, ...]) -> None:
        self.mem = mem
        self.offsets = offsets

    def down(self, index: int) -> bool:
        mem = self.mem
        return any(mem[offset + index] for offset in self.offsets)

    def any_down(self, count: int) -> bool:
        mem = self.mem
        return any(mem[offset:offset + count].count(0) < count for offset in self.offsets)


class HealthBoard:
    def __init__(self, config: Config, previous: HealthBoard | None = None) -> None:
        self.groups = checked_groups(config)
        size = sum(positions(group.upstream) for group in self.groups)
        # Anonymous and MAP_SHARED (mmap's default for fileno -1): inherited across fork, shared.
        self.mem = mmap.mmap(-1, max(1, size), flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        before = previous.states() if previous is not None else {}
        for group in self.groups:
            for index in range(positions(group.upstream)):
                state = Health.CHECKING if group.check.mandatory else Health.UP
                # `persistent`: a peer that was healthy before the reload stays up meanwhile.
                if group.check.persistent and before.get(_key(group, index)) is Health.UP:
                    state = Health.UP
                self.mem[group.offset + index] = int(state)

    def __bool__(self) -> bool:
        return bool(self.groups)

    def get(self, group: CheckedGroup, index: int) -> Health:
        return Health(self.mem[group.offset + index])

    def set(self, group: CheckedGroup, index: int, state: Health) -> None:
        self.mem[group.offset + index] = int(state)

    def health(self, upstream: Upstream, index: int) -> Health | None:
        """What the API reports for a server: any check of its upstream that says so (down over
        checking over up); None when no check covers that upstream."""
        found: Health | None = None
        for group in self.groups:
            if group.upstream is upstream:
                state = self.get(group, index)
                if state is Health.DOWN or found is None or (state is Health.CHECKING and found is Health.UP):
                    found = state
        return found

    def states(self) -> dict[tuple[str, str, str], Health]:
        return {_key(group, index): self.get(group, index)
                for group in self.groups for index in range(positions(group.upstream))}

    def view(self, upstream: Upstream) -> BoardView | None:
        offsets = tuple(group.offset for group in self.groups if group.upstream is upstream)
        return BoardView(self.mem, offsets) if offsets else None
