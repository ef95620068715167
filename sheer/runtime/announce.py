"""The master's announcer: per VIP, one device (sheer.net.announce_device) set up while this instance
should receive the VIP's traffic (sheer.core.announce.decide), down when it should not. BIRD keeps
the VIP's route only while the device is up (the fragment `sheer net apply` wrote), and the device
disappears with the master.

The master decides, because it alone knows all of it: the listeners it holds and the workers
serving them, whether it is stopping, and, through the shared boards, the peers' health and the
API's `down`/`drain`. It looks again whenever the health checker or an API change rings the
doorbell (runtime.shared.Doorbell: the kernel signals the master, SIGIO), on every reload, and at
each tick of its loop.
"""

from __future__ import annotations

from sheer.config.model import Config, Upstream
from sheer.core import announce as core
from sheer.core.control import UpstreamOverrides
from sheer.core.health import Health
from sheer.io.logs import ErrorLogger
from sheer.net.announce_device import AnnounceDevice, DeviceError
from sheer.runtime.board import HealthBoard
from sheer.runtime.peerset import PeerSetBoard
from sheer.runtime.shared import SharedBoard


class AnnounceError(Exception):
    """A device could not be made: the message says why and the fix."""


class Announcer:
    def __init__(self, log: ErrorLogger) -> None:
        self.log = log
        self.devices: dict[str, AnnounceDevice] = {}
        self.announced: dict[str, bool | None] = {}      # None: not decided yet
        self.vips: tuple[core.Vip, ...] = ()

    def configure(self, config: Config) -> None:
        """A device for every VIP of `config` (down until decided), none for VIPs it no longer has."""
        vips = core.vips(config)
        wanted = {vip.address for vip in vips}
        made: list[str] = []
        try:
            for vip in vips:
                if vip.address not in self.devices:
                    self.devices[vip.address] = AnnounceDevice(vip.device)
                    self.devices[vip.address].set_up(False)
                    self.announced[vip.address] = None
                    made.append(vip.address)
        except DeviceError as exc:
            for address in made:
                self.devices.pop(address).close()
                self.announced.pop(address, None)
            raise AnnounceError(f"cannot announce: {exc}") from None
        for address in [a for a in self.devices if a not in wanted]:
            self.log.log("notice", f"VIP {address}: withdrawn, no longer announced by the configuration")
            self.devices.pop(address).close()
            self.announced.pop(address, None)
        self.vips = vips

    def update(self, config: Config, health: HealthBoard | None, shared: SharedBoard,
               peers: PeerSetBoard | None, serving: bool, stopping: str | None) -> None:
        """Decide every VIP again; change (and log) only what changed."""
        if not self.vips:
            return

        for vip in self.vips:
            # A VIP is announced once a check passed; it stays while a peer is up or being checked
            # again (a reload's `mandatory` checks start over: no withdrawal for that).
            keep = self.announced.get(vip.address) is True

            def usable(upstream: Upstream, keep: bool = keep) -> int:
                return _usable(upstream, health, shared, peers, keep)

            settling = None if keep else _settling(vip, health, shared)
            self._set(vip, core.decide(vip, usable, serving, stopping, settling))

    def withdraw_all(self, why: str) -> None:
        for vip in self.vips:
            self._set(vip, core.Decision(False, why))

    def _set(self, vip: core.Vip, decision: core.Decision) -> None:
        device = self.devices.get(vip.address)
        before = self.announced.get(vip.address)
        if device is None or before == decision.announce:
            return
        try:
            device.set_up(decision.announce)
        except DeviceError as exc:
            self.log.log("alert", f"VIP {vip.address}: {exc}")
            return
        self.announced[vip.address] = decision.announce
        if decision.announce:
            self.log.log("notice", f"VIP {vip.address}: announced ({vip.device} up): {decision.reason}")
        elif before is None:
            self.log.log("notice", f"VIP {vip.address}: not announced yet ({vip.device} down): "
                                   f"{decision.reason}")
        else:
            self.log.log("warn", f"VIP {vip.address}: withdrawn ({vip.device} down): {decision.reason}")

    def close(self) -> None:
        for device in self.devices.values():
            device.close()
        self.devices.clear()
        self.announced.clear()


def _settling(vip: core.Vip, health: HealthBoard | None, shared: SharedBoard) -> str | None:
    """Why a VIP not announced yet waits: servers whose first check has not answered, or the kernel's
    DSR table not yet written for the checks' results (sheer.runtime.fastpath)."""
    for upstream in vip.upstreams if health is not None else ():
        assert health is not None
        states = [health.health(upstream, i) for i in range(len(upstream.servers))]
        checking = states.count(Health.CHECKING)
        if checking:
            return f'upstream "{upstream.name}": {checking} server(s) not checked yet'
    if shared.kernel_pending:
        return "the kernel's DSR table does not follow the health checks yet"
    return None


def _usable(upstream: Upstream, health: HealthBoard | None, shared: SharedBoard,
            peers: PeerSetBoard | None, checking: bool = False) -> int:
    """How many of the upstream's servers a balancer could pick now: the API's changes applied,
    empty `resolve` slots skipped, peers the active checks hold down left out (and those still being
    checked, unless `checking`)."""
    refs = shared.layout.peers(upstream)
    slots = peers.view(upstream) if peers else None
    if refs:
        servers = UpstreamOverrides(shared, upstream, tuple(ref.control for ref in refs), slots).servers()
    else:
        servers = upstream.servers
    allowed = (Health.UP, Health.CHECKING) if checking else (Health.UP,)

    def healthy(index: int) -> bool:
        state = health.health(upstream, index) if health else None
        return state is None or state in allowed

    return sum(1 for i, server in enumerate(servers) if server is not None and not server.down and healthy(i))
