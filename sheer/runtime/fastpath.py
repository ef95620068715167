"""The feeder: sheer as the control plane of the kernel's DSR fast path, inside the health checker.

`sheer net apply --dsr router|origin` installs the fast path (sheer.net.fastpath) with the
configuration's table. The running sheer finds it (the apply record, and the table in the kernel)
and keeps each map equal to what its own balancers would pick (sheer.core.fastpath):

- at start and on every reload (a new checker), the whole table, in one transaction;
- when the active checks take a peer down or bring it back, and when the API changes `down`,
  `drain` or `weight` (the control board rings an eventfd): the entries that change, in one
  transaction;
- once a second, nft's per-server counters into the shared board (metrics and the API), and a
  look at the table's handle: a new one means `sheer net apply` made it again, so the whole
  table is written again.

Which path each DSR listener takes, and why, goes to the error log at start.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

from sheer.config.model import Config, Upstream, UpstreamServer
from sheer.core import fastpath as core
from sheer.core.control import UpstreamOverrides
from sheer.io.logs import ErrorLogger
from sheer.net import fastpath_state
from sheer.net.fastpath import FpServer, FpService, NftFastPath, by_listen, fed
from sheer.net.nftlib import Nft
from sheer.net.record import Record, record_path
from sheer.runtime.board import HealthBoard
from sheer.runtime.shared import SharedBoard

TICK = 1.0          # seconds between counter reads


class Feeder:
    def __init__(self, config: Config, health: HealthBoard, shared: SharedBoard, log: ErrorLogger,
                 generation: int = 0) -> None:
        self.config = config
        self.health = health
        self.shared = shared
        self.log = log
        self.generation = generation
        self.nft: Nft | None = None
        self.installed: NftFastPath | None = None   # as `sheer net apply` recorded it
        self.handle: int | None = None
        self.written: dict[str, core.Table | None] | None = None
        self.rules: list[str] | None = None
        self.seen_version = -1
        self.pending = False

    # --- finding it -----------------------------------------------------------------------

    def start(self) -> None:
        """Find the fast path, say which path every DSR listener takes, and write the table."""
        listens = by_listen(self.config)
        if not listens:
            self.settled()
            return
        self.nft = Nft()
        installed, why = self._find()
        steered = {s.listen: s for s in installed.services} if installed else {}
        for name, (server, _) in listens.items():
            assert server.upstream is not None
            method = core.kernel_method(server.upstream)
            service = steered.get(name)
            if isinstance(method, str):
                self.log.log("notice", f"DSR {name}: user-space path: {method}")
            elif installed is None:
                self.log.log("notice", f"DSR {name}: user-space path: {why}")
            elif service is None:
                self.log.log("notice", f"DSR {name}: user-space path: the installed fast path does not "
                                       "steer it (run `sheer net apply` again for this configuration)")
            else:
                self.log.log("notice", f"DSR {name}: kernel fast path: nft netdev ingress on "
                                       f"{installed.dev} (table netdev {installed.name}) steers "
                                       f"{service.vip}:{service.port}; sheer feeds its table; fragments, IP "
                                       f"options and datagrams over {installed.mtu} bytes still come through "
                                       "the user-space path")
        self.installed = installed
        if installed is not None:
            self.sync()
        else:
            self.settled()

    def settled(self) -> None:
        """The kernel's table follows the health checks (or nothing is fed): the master may announce."""
        if self.shared.generation == self.generation and not self.pending:
            self.shared.kernel_pending = False
            self.shared.bell.ring()

    def _find(self) -> tuple[NftFastPath | None, str]:
        record = Record.load(record_path("proxy", None))
        entries = record.entries if record else []
        item = next((e.item for e in entries if isinstance(e.item, NftFastPath)), None)
        try:
            self.handle = fastpath_state.handle(item.name if item else "sheer")
        except OSError as exc:
            return None, (f"cannot read nftables ({exc.strerror}): feeding the fast path needs "
                          "CAP_NET_ADMIN (run sheer as root, or keep the capability)")
        if item is None:
            return None, ("no fast path is installed (`sheer net apply -c CONF --dsr router|origin` "
                          "installs it)")
        if self.handle is None:
            return None, (f"the fast path `sheer net apply` recorded is gone from the kernel (table netdev "
                          f"{item.name}); `sheer net apply` puts it back")
        return item, ""

    # --- feeding it -----------------------------------------------------------------------

    def current(self) -> NftFastPath:
        """The installed fast path with this generation's servers, the API's changes applied."""
        assert self.installed is not None
        item = fed(self.installed, self.config)
        services = []
        for s in item.services:
            upstream = self._upstream(s)
            if upstream is None:
                services.append(s)
                continue
            servers = self._servers(upstream)
            fed_servers = tuple(FpServer(v.host, v.port, v.weight, v.backup, v.down) for v in servers)
            services.append(FpService(s.listen, s.upstream, s.vip, s.port, s.method, fed_servers))
        return NftFastPath(item.dev, tuple(services), item.mtu, item.priority, item.name)

    def _upstream(self, s: FpService) -> Upstream | None:
        found = by_listen(self.config).get(s.listen)
        return found[0].upstream if found else None

    def _servers(self, upstream: Upstream) -> tuple[UpstreamServer, ...]:
        """The servers with the API's changes (the kernel steers upstreams without `resolve` only, whose
        positions are all filled: sheer.core.fastpath.kernel_method)."""
        refs = self.shared.layout.peers(upstream)
        if not refs:
            return upstream.servers
        found = UpstreamOverrides(self.shared, upstream, tuple(ref.control for ref in refs)).servers()
        return tuple(server for server in found if server is not None)

    def tables(self, item: NftFastPath) -> dict[str, core.Table | None]:
        out: dict[str, core.Table | None] = {}
        for s in item.services:
            upstream = self._upstream(s)
            view = self.health.view(upstream) if upstream is not None and self.health else None
            down = [bool(view and view.down(i)) for i in range(len(s.servers))]
            out[s.map] = s.table(down)
        return out

    def sync(self) -> None:
        """Make the kernel's maps what this generation's balancers would pick: one transaction."""
        self.pending = False
        if self.installed is None or self.nft is None or self.shared.generation != self.generation:
            return
        try:
            self._write()
        finally:
            self.settled()           # refused included: the kernel keeps its entries, the log says so

    def _write(self) -> None:
        assert self.nft is not None
        self.seen_version = self.shared.version
        item = self.current()
        tables = self.tables(item)
        script = item.update(tables, self.written, self.rules)
        if not script:
            return
        res = self.nft.run(script)
        if not res.ok:
            self.log.error(f"the kernel refused an update of the fast path's table ({res.first_error()}); "
                           "it keeps the previous entries")
            self.written = None          # unknown now: write everything next time
            return
        changed = _changes(self.written, tables)
        self.written, self.rules = tables, item.rules(tables)
        for s in item.services:
            t = tables.get(s.map)
            if changed.get(s.map):
                self.log.log("info", f"fast path {s.vip}:{s.port}: {changed[s.map]} entries written, "
                                     f"{t.filled if t else 0} of {t.modulus if t else 0} filled")

    def schedule(self) -> None:
        """Coalesce the changes of one moment (several peers down at once) into one transaction."""
        if not self.pending and self.installed is not None:
            self.pending = True
            if self.shared.generation == self.generation:
                self.shared.kernel_pending = True
            asyncio.get_running_loop().call_soon(self._sync_safely)

    def _sync_safely(self) -> None:
        try:
            self.sync()
        except Exception as exc:  # noqa: BLE001  (feeding must never stop the health checks)
            self.log.log("alert", f"feeding the fast path failed: {exc!r}")

    def on_control(self) -> None:
        """The API changed a server (eventfd rung by the control board)."""
        try:
            os.eventfd_read(self.shared.changed_fd)
        except OSError:
            pass
        self.schedule()

    # --- reading it back --------------------------------------------------------------------

    def tick(self) -> None:
        """Once a second: counters into the shared board; a table made again is written again."""
        if self.nft is None or self.installed is None:
            return
        handle = fastpath_state.handle(self.installed.name)
        if handle != self.handle:
            self.handle = handle
            self.written = self.rules = None
            if handle is None:
                self.log.warning(f"the fast path (table netdev {self.installed.name}) was removed: DSR goes "
                                 "through the user-space path")
            else:
                # `sheer net apply` made it again, perhaps for another configuration: what it recorded now
                installed, why = self._find()
                if installed is None:
                    self.log.warning(f"the fast path cannot be fed any more: {why} (a reload looks again)")
                    self._publish({}, steering=False)
                    self.installed = None
                    return
                self.installed = installed
                self.log.log("notice", "the fast path was installed again: writing its table")
        if handle is None:
            self._publish({}, steering=False)
            return
        if self.written is None or self.shared.version != self.seen_version:
            self._sync_safely()
        self._publish(fastpath_state.counters(self.installed.name), steering=True)

    def _publish(self, counted: Mapping[str, fastpath_state.Counted], steering: bool) -> None:
        if self.shared.generation != self.generation:
            return
        assert self.installed is not None
        layout = self.shared.layout
        listens = by_listen(self.config)
        for s in self.installed.services:
            found = listens.get(s.listen)
            if found is None:
                continue
            server, _ = found
            block = layout.dsr.get(str(server.listens[0]))
            refs = layout.peers(server.upstream) if server.upstream else ()
            packets = octets = 0
            for ref in refs:
                c = counted.get(FpServer(ref.server.host, ref.server.port).counter)
                if c is not None:
                    self.shared.publish(ref.block.at("kernel_datagrams"), c.packets)
                    self.shared.publish(ref.block.at("kernel_bytes"), c.bytes)
                    packets, octets = packets + c.packets, octets + c.bytes
            if block is not None:
                self.shared.publish(block.at("kernel_datagrams"), packets)
                self.shared.publish(block.at("kernel_bytes"), octets)
                self.shared.publish(block.at("kernel"), int(steering and s.method is not None))

    async def run(self) -> None:
        """The feeder's own task in the checker: the eventfd and the counters' tick."""
        if self.installed is None:
            return
        loop = asyncio.get_running_loop()
        loop.add_reader(self.shared.changed_fd, self.on_control)
        try:
            while True:
                await asyncio.sleep(TICK)
                try:
                    self.tick()
                except Exception as exc:  # noqa: BLE001
                    self.log.log("alert", f"reading the fast path failed: {exc!r}")
        finally:
            loop.remove_reader(self.shared.changed_fd)


def _changes(before: Mapping[str, core.Table | None] | None,
             after: Mapping[str, core.Table | None]) -> dict[str, int]:
    out = {}
    for name, table in after.items():
        old = before.get(name) if before else None
        a = old.slots if old else ()
        b = table.slots if table else ()
        out[name] = sum(1 for i in range(max(len(a), len(b)))
                        if (a[i] if i < len(a) else None) != (b[i] if i < len(b) else None))
    return out
