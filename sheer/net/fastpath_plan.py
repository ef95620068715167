"""Planning the DSR fast path on the proxy (router NAT and origin NAT alike): which DSR listeners
the kernel can steer, on which interface, after which other users of its receive hooks.

The fast path is an accelerator, never a requirement: whatever it cannot take (a balancing method
the kernel cannot run, an unknown VIP or interface) is a note saying why, and that service keeps
the user-space path; it never makes a plan fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sheer.core import fastpath as core
from sheer.net.facts import KernelFacts
from sheer.net.fastpath import HOOK_PRIORITY, FpService, NftFastPath, service_of
from sheer.net.items import NftRule


@dataclass
class Found:
    """What planning the fast path concluded."""

    item: NftFastPath | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def plan_fastpath(kernel: KernelFacts, dsr: list[object], public_if: str | None,
                  vip_of: Callable[[object], str | None], enabled: bool = True) -> Found:
    """`dsr`: the plan's DSR services (sheer.net.plan.Service, each with its stream server)."""
    found = Found()
    if not enabled:
        found.notes.append("fast path off (--fastpath off): every DSR datagram goes through sheer's "
                           "user-space path")
        return found
    if public_if is None:
        found.notes.append("no fast path: cannot tell which interface receives the VIP's traffic "
                           "(pass --public-if); DSR stays on the user-space path")
        return found
    services: dict[str, FpService] = {}
    for service in dsr:
        server = getattr(service, "stream", None)
        listen = getattr(service, "listen", None)
        if server is None or server.upstream is None or listen is None:
            continue
        method = core.kernel_method(server.upstream)
        if isinstance(method, str):
            found.notes.append(f"{listen}: user-space path (no kernel fast path): {method}")
            continue
        vip = vip_of(service)
        if vip is None:
            found.notes.append(f"{listen}: user-space path: cannot tell the public address (pass --vip)")
            continue
        fp = service_of(server, listen, vip)
        why = _unsteerable(fp)
        if why:
            found.notes.append(f"{listen}: user-space path (no kernel fast path): {why}")
            continue
        services.setdefault(fp.map, fp)
    if not services:
        return found
    mtu = _mtu_towards(kernel, list(services.values()), public_if)
    others = [user for user in kernel.hook_users if user.dev == public_if]
    priority = HOOK_PRIORITY
    prios = [user.priority for user in others if user.priority is not None]
    if prios and max(prios) >= priority:
        priority = max(prios) + 1            # run after them: they see what the client sent, as before
    for user in others:
        found.notes.append(f"{public_if} already has {user}: left alone; "
                           + ("it runs before the fast path (tc and XDP always do) and sees the datagram "
                              "as the client sent it" if user.kind != "nft" or user.priority is None
                              or user.priority < priority else "it runs after the fast path"))
    found.item = NftFastPath(public_if, tuple(services.values()), mtu, priority)
    for fp in services.values():
        table = fp.table()
        filled = f"{table.filled} of {table.modulus} slots" if table else "no slots"
        found.notes.append(f"fast path: {fp.vip}:{fp.port} udp is steered by the kernel (nft netdev "
                           f"ingress on {public_if}) to upstream {fp.upstream}; {filled} now, then fed by "
                           "the running sheer (health checks, reloads, API changes)")
    found.notes.append("fast path: fragments, IP options and datagrams over the MTU "
                       f"({mtu}) still reach sheer's listener and the user-space path")
    return found


def _unsteerable(fp: FpService) -> str | None:
    if any((":" in s.host) != (fp.family == 6) for s in fp.servers):
        return "an upstream of the other address family than the VIP (one rewrite writes one family)"
    if fp.port_rewrite() == "map":
        hosts = [s.host for s in fp.servers]
        if len(set(hosts)) != len(hosts):
            return "one address serves on two ports, and the kernel rewrites the port by address"
    return None


def _mtu_towards(kernel: KernelFacts, services: list[FpService], public_if: str) -> int:
    """The smallest MTU of the interfaces towards the upstreams (and the receiving one)."""
    devs = {public_if}
    for fp in services:
        for server in fp.servers:
            route = kernel.route_to(server.host)
            if route and route.dev:
                devs.add(route.dev)
    mtus = [kernel.mtus[dev] for dev in devs if dev in kernel.mtus]
    return min(mtus) if mtus else 1500


def notrack_rules(item: NftFastPath, public_if: str, router: bool, family: int = 4) -> list[NftRule]:
    """Conntrack would make an entry for every client ip:port the fast path forwards (and, in router
    NAT, for every reply): state nobody reads, since both rewrites are stateless. `notrack` before
    conntrack (priority raw) spares that work wherever conntrack runs in this namespace. For the
    services of one family (`table ip sheer` or `table ip6 sheer`); none: an empty list."""
    services = [fp for fp in item.services if fp.family == family]
    if not services:
        return []
    ip, iptables = ("ip", "iptables") if family == 4 else ("ip6", "ip6tables")
    addrs = sorted({s.host for fp in services for s in fp.servers})
    ports = sorted({s.port for fp in services for s in fp.servers})
    a = addrs[0] if len(addrs) == 1 else "{ " + ", ".join(addrs) + " }"
    p = str(ports[0]) if len(ports) == 1 else "{ " + ", ".join(map(str, ports)) + " }"
    rules = [NftRule(f'iifname "{public_if}" {ip} daddr {a} udp dport {p} notrack',
                     f"{iptables} -t raw -A PREROUTING -i {public_if} -p udp -d {','.join(addrs)} "
                     f"-m multiport --dports {','.join(map(str, ports))} -j NOTRACK")]
    if router:
        # replies to the proxy itself (the health checker's probes) stay tracked: an INPUT filter may
        # want `ct state established`
        rules.append(NftRule(f"{ip} saddr {a} udp sport {p} fib daddr type != local notrack",
                             f"{iptables} -t raw -A PREROUTING -p udp -s {','.join(addrs)} -m multiport "
                             f"--sports {','.join(map(str, ports))} -m addrtype ! --dst-type LOCAL "
                             "-j NOTRACK"))
    return rules
