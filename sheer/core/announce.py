"""Whether this instance should receive a VIP's traffic now, and how BIRD is told: sans-IO.

An instance announces a VIP while it can serve it: its listeners are open and workers serve them,
every service on the VIP (each server listening on it, each location that proxies) has at least
one usable upstream server (up in the health checks, not `down` or `drain` by the API), and it is
neither stopping nor draining. Otherwise it withdraws, and the router in front moves the VIP's
flows to the instances that still announce it.

How BIRD learns it: `sheer net apply` writes a fragment BIRD includes, with one static route per
VIP through a device named after the VIP (`device()`):

    protocol static sheer_announce {
        ipv4;
        route 192.168.100.10/32 via "sheer-ac0a8640a";
    }

BIRD keeps such a route only while that interface exists and is up. The running sheer's master
creates the device (a tun device, sheer.net.announce_device) and sets it up to announce, down to
withdraw: BIRD hears it from the kernel at once (netlink), with no `birdc` call and no reload.
The device belongs to the master's open file: when the master dies, even by SIGKILL, the kernel
removes it, and BIRD withdraws the route (measured in the lab in tens of milliseconds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

from sheer.config.announce import covers
from sheer.config.model import Config, Upstream

PROTOCOL = "sheer_announce"          # the fragment's BIRD protocol: export it to your BGP sessions
DEVICE_PREFIX = "sheer-a"            # + the VIP in hex: 15 characters, IFNAMSIZ - 1


def device(address: str) -> str:
    """The interface whose state is the VIP's announcement: `sheer-a` + the address in hex."""
    return f"{DEVICE_PREFIX}{int(IPv4Address(address)):08x}"


@dataclass(frozen=True, slots=True)
class Vip:
    address: str
    device: str
    upstreams: tuple[Upstream, ...]     # what its services proxy to: each needs a usable server
    listens: tuple[str, ...]            # the listen addresses that serve it


@dataclass(frozen=True, slots=True)
class Decision:
    announce: bool
    reason: str                         # why not, or what it serves


def vips(config: Config) -> tuple[Vip, ...]:
    found = []
    for vip in config.announce.vips:
        upstreams: dict[int, Upstream] = {}
        listens: list[str] = []
        for server in config.stream.servers if config.stream else ():
            mine = [str(listen) for listen in server.listens if covers(listen, vip.address)]
            if mine:
                listens += mine
                if server.upstream is not None:
                    upstreams.setdefault(id(server.upstream), server.upstream)
        for http_server in config.http.servers if config.http else ():
            mine = [str(listen) for listen in http_server.listens if covers(listen, vip.address)]
            if mine:
                listens += mine
                for location in http_server.locations:
                    upstream = location.proxy_pass.upstream if location.proxy_pass else None
                    if upstream is not None:
                        upstreams.setdefault(id(upstream), upstream)
        found.append(Vip(vip.address, device(vip.address), tuple(upstreams.values()),
                         tuple(dict.fromkeys(listens))))
    return tuple(found)


def decide(vip: Vip, usable: Callable[[Upstream], int], serving: bool,
           stopping: str | None = None, settling: str | None = None) -> Decision:
    """`usable(upstream)`: how many of its servers could take traffic now; `serving`: the listeners are
    open and workers serve them; `stopping`: why the instance stops or drains (None: it does not);
    `settling`: why an instance that does not announce yet waits a little longer (its first health
    round is not complete, or the kernel's table does not follow it yet): every instance of a fleet
    must pick the same upstream for a client, so none takes flows with a partial view."""
    if stopping:
        return Decision(False, stopping)
    if not serving:
        return Decision(False, "no worker serves its listeners")
    for upstream in vip.upstreams:
        if usable(upstream) == 0:
            return Decision(False, f'upstream "{upstream.name}" has no usable server (all unhealthy, '
                                   "down or draining)")
    if settling:
        return Decision(False, settling)
    served = ", ".join(f'"{u.name}"' for u in vip.upstreams)
    upstreams = f" with upstream {served}" if served else ""
    return Decision(True, f"serving {', '.join(vip.listens)}{upstreams}")


def fragment(config: Config, source: str) -> str:
    """BIRD's fragment for the configuration's VIPs (`source`: what wrote it, for its comment)."""
    routes = "".join(f'    route {v.address}/32 via "{device(v.address)}";\n' for v in config.announce.vips)
    return (f"# Written by `{source}`;\n"
            "# `sheer net revert` removes it. Edit sheer's configuration, not this file. BIRD keeps each\n"
            "# route only while its device is up: sheer sets it up while it can serve the address, down\n"
            "# when it cannot, and the device disappears with sheer.\n"
            f"protocol static {PROTOCOL} {{\n    ipv4;\n{routes}}}\n")
