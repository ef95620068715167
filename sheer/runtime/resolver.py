"""The resolver task: one per generation, in its helper process (with the health checks), never
per worker. It re-resolves every `server NAME resolve` line when the name's answer stops standing
(its TTL, or the resolver's `valid=`), writes the peers it found into the shared peer-set board
that every worker's balancer reads, and says what changed in the error log:

    name "app.internal" of upstream "app" was resolved to 10.0.0.1, 10.0.0.3 (added 10.0.0.3:8080,
        removed 10.0.0.2:8080)                                              (one line)
    app.internal could not be resolved (110: Operation timed out); upstream "app" keeps its 2 peer(s)

A new peer starts afresh: its counters start at zero (this process's row takes the old totals
back), the API's changes to its slot are cleared, its health checks begin (mandatory: checking).
Upstream addresses feed `sheer net plan` (for transparent and DSR servers); when they change, the
log says to apply it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sheer.config.model import Config, UpstreamServer
from sheer.config.names import with_peers
from sheer.config.resolver import Resolver
from sheer.core.peers import PEERS_PER_NAME, slot_server
from sheer.core.resolve import PeerChanges, PeerSlots, changes_peers, next_attempt, valid_until
from sheer.core.resolve_wire import NXDOMAIN, Resolution, strerror
from sheer.core.stats import PEER, Kind
from sheer.io.dns import DnsClient
from sheer.io.logs import ErrorLogger
from sheer.net.plan import services
from sheer.runtime.peerset import Name, PeerSetBoard
from sheer.runtime.shared import UNSET, SharedBoard

# What the health checks do when a peer comes or goes: (name, position, the peer or None).
Follow = Callable[[Name, int, UpstreamServer | None], None]


class ResolverTask:
    def __init__(self, config: Config, board: PeerSetBoard, shared: SharedBoard, row: int, log: ErrorLogger,
                 follow: Follow | None = None) -> None:
        self.config = config
        self.board = board
        self.shared = shared
        self.row = shared.writer(row)
        self.log = log
        self.follow = follow
        self.slots = {name.number: PeerSlots(PEERS_PER_NAME, [board.entry(name, slot)[0]
                                                               for slot in range(PEERS_PER_NAME)])
                      for name in board.names}
        self.clients: dict[int, DnsClient] = {}

    def client(self, resolver: Resolver) -> DnsClient:
        found = self.clients.get(id(resolver))
        if found is None:
            found = self.clients[id(resolver)] = DnsClient(resolver, self.log.log)
        return found

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for name in self.board.names:
                tasks.create_task(self.keep(name))

    async def keep(self, name: Name) -> None:
        """Resolve `name` now (or when the previous generation's answer stops standing), then again
        and again at each answer's time."""
        resolver = name.upstream.resolver
        assert resolver is not None          # the config refuses `resolve` without one
        client = self.client(resolver)
        loop = asyncio.get_running_loop()
        delay = self.board.valid(name) - time.time()
        while True:
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                resolution = await client.resolve(name.server.host)
                now = loop.time()
                self.record(name, resolution)
            except Exception as exc:  # noqa: BLE001 -- a bug costs this name one round, not the checks
                self.log.log("alert", f"resolving {name.server.host} failed: {exc!r}")
                delay = max(resolver.timeout, 1.0)
                continue
            if changes_peers(resolution):
                # What a reload's resolver waits for: when this answer stops standing (read by the
                # next generation's task only, so no readers to frame it for).
                self.board.set_valid(name, time.time() + valid_until(resolution, resolver.valid, now) - now)
            delay = next_attempt(resolution, resolver.valid, resolver.timeout, now) - now

    def record(self, name: Name, resolution: Resolution) -> None:
        """Apply one answer: the changed peers into the board, the log, the health checks."""
        slots = self.slots[name.number]
        host, upstream = name.server.host, name.upstream.name
        if not resolution.ok:
            kept = ("" if resolution.code == NXDOMAIN
                    else f'; upstream "{upstream}" keeps its {len(slots.addresses)} peer(s)')
            self.log.log("error",
                         f"{host} could not be resolved ({resolution.code}: "
                         f"{strerror(resolution.code)}){kept}")
            if not changes_peers(resolution):
                return
        before = self.peers()
        had = bool(slots.addresses)     # a first answer fills what `sheer net apply` resolved itself
        changes = slots.update(resolution.addresses)
        if not changes:
            return
        self.apply(name, changes)
        port = name.server.port
        said = [f"added {_peer(change.address, port)}" for change in changes.added]
        said += [f"removed {_peer(change.address, port)}" for change in changes.removed]
        if said:
            found = ", ".join(resolution.addresses) or "nothing"
            self.log.log("notice",
                         f'name "{host}" of upstream "{upstream}" was resolved to {found} '
                         f'({", ".join(said)})')
        if changes.no_room:
            self.log.log("error", f'cannot add new server to upstream "{upstream}", memory exhausted '
                                  f"(sheer keeps {PEERS_PER_NAME} peers per name; "
                                  f"{', '.join(changes.no_room)} left out)")
        if had:
            self.plumbing(before)

    def apply(self, name: Name, changes: PeerChanges) -> None:
        now_ms = int(time.time() * 1000)
        with self.board.changing():
            for change in changes.removed:
                self.board.put(name, change.slot, None)
            for change in changes.added:
                self.board.put(name, change.slot, change.address, now_ms)
        if changes.added:
            self.start_afresh(name, [change.slot for change in changes.added])
        if self.follow is not None:
            for change in changes.removed:
                self.follow(name, name.position(change.slot), None)
            for change in changes.added:
                self.follow(name, name.position(change.slot), slot_server(name.server, change.address))

    def start_afresh(self, name: Name, slots: list[int]) -> None:
        """A slot's new peer is a new server to the API: its counters from zero, no API changes."""
        refs = self.shared.layout.peers(name.upstream)
        kinds = self.shared.layout.kinds
        with self.shared.changing():
            for slot in slots:
                position = name.position(slot)
                if position >= len(refs):
                    continue
                ref = refs[position]
                self.shared.set_override(ref.control, down=UNSET, drain=UNSET, weight=0)
                block = ref.block
                if block.base == 0:
                    continue
                for column in range(block.base, block.base + len(PEER)):
                    if column < len(kinds) and kinds[column] is Kind.COUNTER:
                        self.row[column] -= self.shared.total(column)

    def peers(self) -> dict[tuple[str, str], list[UpstreamServer]]:
        found: dict[tuple[str, str], list[UpstreamServer]] = {}
        for name in self.board.names:
            peers = found.setdefault((name.protocol, name.upstream.name), [])
            peers += [slot_server(name.server, address) for address in self.slots[name.number].addresses]
        return found

    def plumbing(self, before: dict[tuple[str, str], list[UpstreamServer]]) -> None:
        """`sheer net plan` derives its rules for transparent and DSR servers from their upstreams'
        addresses (marks, NAT maps): say when those changed, and what to run."""
        def inputs(peers: dict[tuple[str, str], list[UpstreamServer]]) -> set[tuple[str, str,
                                                                                    tuple[str, ...]]]:
            return {(service.where, str(service.listen), tuple(sorted(u.name for u in service.upstreams)))
                    for service in services(with_peers(self.config, peers))}

        if inputs(before) != inputs(self.peers()):
            self.log.log("warn", "upstream addresses changed the kernel plumbing this configuration needs: "
                                 f'run "sheer net apply -c {self.config.file}" again ("sheer net plan" shows '
                                 'it)')


def _peer(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"

