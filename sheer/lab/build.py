"""lab up / down: build the topology in network namespaces, repair it, remove every trace of it."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from sheer.lab import dualstack, witness
from sheer.lab.errors import LabError
from sheer.lab.inspect import listeners, verify
from sheer.lab.procs import (
    alive,
    cmdline,
    netns_exec,
    netns_list,
    netns_pids,
    read_pid,
    run,
    signal_and_wait,
    wait_for,
)
from sheer.lab.topology import (
    COMMON_SYSCTLS,
    FLEET_MAX,
    LOCK_FILE,
    RR_NFT_TABLE,
    STATE_DIR,
    Node,
    Segment,
    Topology,
    article,
    fleet,
    rr_ruleset,
)

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (ip netns, veth, bridges, nft); run it as root")
    if shutil.which("ip") is None:
        raise LabError("`ip` not found: install iproute2")


@contextmanager
def lab_lock() -> Iterator[None]:
    """One up/down at a time, across processes (a test session and a shell, say)."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def up(topo: Topology | None = None, state_dir: Path = STATE_DIR, progress: Progress = _quiet,
       ipv6: bool = False) -> bool:
    """Make the lab exist and be healthy. Returns False if it already was, True if (re)built.
    `ipv6`: make it dual-stack too (sheer.lab.dualstack); a dual-stack lab stays so until `down`."""
    topo = topo or article()
    require_root()
    witness.check_binaries()
    with lab_lock():
        return up_locked(topo, state_dir, progress, ipv6)


def up_locked(topo: Topology, state_dir: Path, progress: Progress, ipv6: bool = False) -> bool:
    """up() for a caller holding the lab's lock (sheer.lab.fleet builds on the article's lab)."""
    problems = verify(topo, state_dir)
    if not problems:
        progress("lab is already up")
        if ipv6 and not dualstack.enabled(state_dir):
            _ipv6(topo, state_dir, progress)
        return False
    if netns_list() & set(topo.namespaces) or state_dir.exists():
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        progress(f"repairing a broken lab: {problems[0]}{more}; rebuilding it")
        _down(topo, state_dir, progress)
    started = time.monotonic()
    _build(topo, state_dir, progress)
    if ipv6:
        _ipv6(topo, state_dir, progress)
    problems = verify(topo, state_dir)
    if problems:
        raise LabError("the lab was built but is not healthy: " + "; ".join(problems))
    progress(f"lab is up ({time.monotonic() - started:.1f}s)")
    return True


def _ipv6(topo: Topology, state_dir: Path, progress: Progress) -> None:
    progress(f"dual stack: IPv6 beside IPv4 ({dualstack.VIP6} beside the VIP, upstreams "
             f"{', '.join(str(dualstack.address6(n)) for n in topo.upstreams)})")
    dualstack.enable(topo, state_dir)


def ipv6(enable: bool, topo: Topology | None = None, state_dir: Path = STATE_DIR) -> None:
    """Turn a built lab's IPv6 on or off (tests do, around their IPv6 cases)."""
    topo = topo or article()
    with lab_lock():
        if enable and not dualstack.enabled(state_dir):
            dualstack.enable(topo, state_dir)
        elif not enable and dualstack.enabled(state_dir):
            dualstack.disable(topo, state_dir)


def down(topo: Topology | None = None, state_dir: Path = STATE_DIR, progress: Progress = _quiet) -> None:
    """Remove every namespace and process of the lab. Safe to run any number of times."""
    topo = topo or article()
    require_root()
    with lab_lock():
        _down(topo, state_dir, progress)


def _down(topo: Topology, state_dir: Path, progress: Progress) -> None:
    for node in topo.upstreams:
        for service in witness.SERVICES:
            pid = _own_pid(witness.pid_file(node, service, state_dir), state_dir)
            if pid is not None:
                progress(f"stopping {service} on {node.name} (pid {pid})")
                signal_and_wait(pid)
    # the fleet's nodes too, whatever shape the lab was last given (sheer.lab.fleet)
    delete_namespaces([*fleet(FLEET_MAX).namespaces, *topo.namespaces], progress)
    shutil.rmtree(state_dir, ignore_errors=True)


def delete_namespaces(namespaces: list[str], progress: Progress) -> None:
    existing = netns_list()
    for netns in dict.fromkeys(namespaces):
        if netns not in existing:
            continue
        # deleting a namespace does not end what runs in it: a proxy left by a killed test would
        # keep the namespace (and its sockets) alive, nameless
        for pid in netns_pids(netns):
            progress(f"stopping pid {pid} in {netns}: {cmdline(pid)[:60]}")
            signal_and_wait(pid)
        run("ip", "netns", "delete", netns)
        progress(f"deleted {netns}")


def _own_pid(path: Path, state_dir: Path) -> int | None:
    """The PID in our pid file, only if it is still the process we started (PIDs get reused)."""
    pid = read_pid(path)
    if pid is None or not alive(pid) or str(state_dir) not in cmdline(pid):
        return None
    return pid


def sysctls_of(node_sysctls: tuple[tuple[str, str], ...]) -> list[str]:
    merged = dict(COMMON_SYSCTLS)
    merged.update(node_sysctls)
    return [f"{k}={v}" for k, v in merged.items()]


def batch(netns: str, lines: list[str]) -> None:
    run("ip", "-n", netns, "-batch", "-", input="\n".join(lines) + "\n")


def _build(topo: Topology, state_dir: Path, progress: Progress) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    progress(f"creating namespaces {', '.join(topo.namespaces)}")
    for netns in topo.namespaces:
        run("ip", "netns", "add", netns)
        batch(netns, ["link set lo up"])
    # sysctls before any interface exists, so each new interface starts from "default"
    for node in topo.nodes:
        netns_exec(node.netns, "sysctl", "-qw", *sysctls_of(node.sysctls))
    netns_exec(topo.switch_netns, "sysctl", "-qw", *sysctls_of(()))
    _build_switch(topo, progress)
    for node in topo.nodes:
        build_node(node, progress)
    progress(f"return router: nft table {RR_NFT_TABLE} forwards only UDP from the VIP")
    run("ip", "netns", "exec", topo.node("rr").netns, "nft", "-f", "-", input=rr_ruleset())
    for node in topo.upstreams:
        progress(f"starting nginx and dnsmasq witnesses on {node.name} ({node.address()})")
        witness.start(node, state_dir)
    for node in topo.upstreams:
        wait_for(partial(_listening, node), 5.0, f"the witnesses of {node.name} to listen")


def _build_switch(topo: Topology, progress: Progress) -> None:
    build_switch(topo, topo.segments, topo.nodes, progress)


def build_switch(topo: Topology, segments: tuple[Segment, ...], nodes: tuple[Node, ...],
                 progress: Progress) -> None:
    """Bridges for `segments`, and a port on the right one for every interface of `nodes`."""
    lines: list[str] = []
    for seg in segments:
        progress(f"switch: bridge {seg.bridge} for {seg.name} {seg.network}")
        lines += [f"link add {seg.bridge} type bridge", f"link set {seg.bridge} up"]
    for node in nodes:
        for iface in node.ifaces:
            bridge = topo.segment(iface.segment).bridge
            # created in the switch namespace with its peer born in the node: never in the root one
            lines += [
                f"link add {iface.port} type veth peer name {iface.name} netns {node.netns}",
                f"link set {iface.port} master {bridge} up",
            ]
    batch(topo.switch_netns, lines)


def build_node(node: Node, progress: Progress) -> None:
    lines: list[str] = []
    for iface in node.ifaces:
        lines += [f"addr add {iface.address} dev {iface.name}", f"link set {iface.name} up"]
    lines += [f"route add {r.dst} via {r.via}" for r in node.routes]
    addrs = ", ".join(f"{i.name} {i.address}" for i in node.ifaces)
    routes = "".join(f"; {r.dst} via {r.via}" for r in node.routes)
    progress(f"{node.name}: {addrs}{routes}")
    batch(node.netns, lines)


def _listening(node: Node) -> bool:
    return witness.expected_listeners() <= listeners(node.netns)
