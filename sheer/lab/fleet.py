"""The fleet: `sheer lab up --fleet N` and `sheer lab fleet stop|start K`.

On top of the article's lab (sheer.lab.topology.fleet): an edge router running BIRD with ECMP
(`fib_multipath_hash_policy=1`: flows spread by 4-tuple), and proxy1..proxyN, each with its own
BIRD peering with the edge and sheer running the article's DSR configuration balanced by
`hash $remote_addr$remote_port maglev`, so every proxy picks the same upstream for a client. The
VIP 192.168.100.10 is a /32 the edge learns over BGP from every proxy that announces it. The
upstreams answer the client directly through the return router (DSR, origin NAT: each rewrites
its replies' source to the VIP), so it does not matter which proxy a query came through.

The fleet's upstream plumbing (origin NAT for the fleet's VIP) and the article's DSR steps use the
same upstreams' return path: run one or the other (the tests do; `sheer lab down` removes both).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from sheer.lab import bird, build, configs
from sheer.lab.errors import LabError
from sheer.lab.inspect import listeners, verify
from sheer.lab.procs import alive, netns_exec, netns_list, read_pid, run, signal_and_wait, wait_for
from sheer.lab.topology import (
    FLEET_MAX,
    FLEET_NET,
    FLEET_VIP,
    RR_INTERNAL,
    RR_NFT_TABLE,
    STATE_DIR,
    Node,
    Topology,
    article,
    current,
    fleet,
    proxy_fabric,
    rr_ruleset,
)

Progress = build.Progress
ANNOUNCED_WITHIN = 15.0      # seconds for a new fleet's BGP sessions and first announcements


def state(node: Node, state_dir: Path = STATE_DIR) -> Path:
    return state_dir / node.name


def config_path(node: Node, state_dir: Path = STATE_DIR) -> Path:
    return state(node, state_dir) / "sheer.conf"


def upstream_config(state_dir: Path = STATE_DIR) -> Path:
    """The fleet's configuration as the upstreams' `sheer net apply --role upstream` reads it."""
    return state_dir / "fleet.conf"


def _sheer(netns: str, *args: str, check: bool = True,
           timeout: float = 30) -> subprocess.CompletedProcess[str]:
    res = netns_exec(netns, sys.executable, "-m", "sheer", *args, check=False, timeout=timeout)
    if check and res.returncode != 0:
        lines = [ln for ln in (res.stderr + res.stdout).splitlines() if ln.strip()]
        why = lines[-1] if lines else res.returncode
        raise LabError(f"`sheer {' '.join(args[:2])}` in {netns} failed: {why}")
    return res


# --- up ----------------------------------------------------------------------------------------

def up(n: int, state_dir: Path = STATE_DIR, progress: Progress = build._quiet) -> bool:
    """Make the article's lab with a fleet of `n` proxies exist, every proxy's sheer running.
    Returns False if it already was (sheer started where it had been stopped), True if built."""
    topo = fleet(n)
    build.require_root()
    with build.lab_lock():
        problems = verify(topo, state_dir) + problems_of(topo, state_dir)
        if not problems:
            for node in topo.fleet_proxies:
                if running(node, state_dir) is None:
                    start_sheer(node, state_dir, progress)
            progress(f"the fleet of {n} is already up")
            return False
        progress(f"building the fleet of {n}: {problems[0]}")
        _remove(current(state_dir) if current(state_dir).fleet else fleet(FLEET_MAX), state_dir, progress)
        build.up_locked(article(), state_dir, progress)
        started = time.monotonic()
        _extend(topo, state_dir, progress)
        problems = verify(topo, state_dir) + problems_of(topo, state_dir)
        if problems:
            raise LabError("the fleet was built but is not healthy: " + "; ".join(problems))
        progress(f"the fleet of {n} is up ({time.monotonic() - started:.1f}s)")
        return True


def _extend(topo: Topology, state_dir: Path, progress: Progress) -> None:
    extra = tuple(n for n in topo.nodes if n.role == "edge" or n in topo.fleet_proxies)
    for node in extra:
        run("ip", "netns", "add", node.netns)
        build.batch(node.netns, ["link set lo up"])
        netns_exec(node.netns, "sysctl", "-qw", *build.sysctls_of(node.sysctls))
    build.build_switch(topo, (topo.segment("fabric"),), extra, progress)
    for node in extra:
        build.build_node(node, progress)
    for name in ("client", "rr", *(u.name for u in topo.upstreams)):
        # a fleet built again has new MACs behind the same addresses (edge, proxyK): forget the old ones
        # rather than send to them until the neighbour entries time out
        netns_exec(topo.node(name).netns, "ip", "neigh", "flush", "all")
    for name in ("client", "rr"):
        progress(f"{name}: route {FLEET_NET} via the edge")
        netns_exec(topo.node(name).netns, "ip", "route", "replace", str(FLEET_NET), "via",
                   str(topo.node("edge").address("public")))
    progress(f"return router: nft table {RR_NFT_TABLE} forwards UDP from {FLEET_VIP} too")
    _rr_ruleset(topo, fleet_vip=True)
    conf = upstream_config(state_dir)
    conf.write_text(configs.fleet(str(state_dir)))
    for up in topo.upstreams:
        progress(f"{up.name}: origin NAT for {FLEET_VIP} (`sheer net apply --role upstream --dsr origin`)")
        _sheer(up.netns, "net", "apply", "-c", str(conf), "--role", "upstream", "--host", str(up.address()),
               "--dsr", "origin", "--vip", str(FLEET_VIP), "--via", str(RR_INTERNAL))
    edge = topo.node("edge")
    names = ", ".join(p.name for p in topo.fleet_proxies)
    progress(f"edge: BIRD, eBGP with {names}, ECMP into its main table")
    bird.start(edge, bird.edge_conf(topo, state_dir), state_dir)
    for node in topo.fleet_proxies:
        progress(f"{node.name}: BIRD (AS {bird.index(node) + 65000}, {proxy_fabric(bird.index(node))})")
        bird.start(node, bird.proxy_conf(node, state_dir), state_dir)
    for node in topo.fleet_proxies:
        state(node, state_dir).mkdir(parents=True, exist_ok=True)
        config_path(node, state_dir).write_text(fleet_config(node, state_dir))
        _plumbing(node, state_dir, progress)
        start_sheer(node, state_dir, progress, wait=False)
    wait_for(lambda: len(bird.nexthops(edge)) == topo.fleet, ANNOUNCED_WITHIN,
             f"the edge to route {FLEET_VIP} through all {topo.fleet} proxies")
    progress(f"edge: {FLEET_VIP} via {', '.join(bird.nexthops(edge))} (ECMP)")
    (state_dir / "fleet").write_text(f"{topo.fleet}\n")       # last: a fleet half built is no fleet


def _plumbing(node: Node, state_dir: Path, progress: Progress) -> None:
    """The proxy's kernel state, from its configuration: the VIP on an interface of sheer's own, BIRD's
    fragment (read by its BIRD at once), the DSR fast path."""
    progress(f"{node.name}: `sheer net apply --dsr origin` (the VIP, BIRD's fragment, the DSR fast path)")
    _sheer(node.netns, "net", "apply", "-c", str(config_path(node, state_dir)), "--dsr", "origin")


def _rr_ruleset(topo: Topology, fleet_vip: bool) -> None:
    rr = topo.node("rr").netns
    netns_exec(rr, "nft", "delete", "table", "ip", RR_NFT_TABLE, check=False)
    run("ip", "netns", "exec", rr, "nft", "-f", "-", input=rr_ruleset(fleet=fleet_vip))


def fleet_config(node: Node, state_dir: Path = STATE_DIR) -> str:
    """proxyK's sheer.conf: the fleet's DSR service, announcing the VIP through proxyK's BIRD."""
    announce = (f"announce {FLEET_VIP};\n"
                f"announce_bird_socket {bird.socket(node, state_dir)};\n"
                f"announce_bird_fragment {bird.fragments(node, state_dir) / 'sheer.conf'};\n")
    return configs.fleet(str(state(node, state_dir)), announce)


# --- sheer on a proxy -----------------------------------------------------------------------------

def running(node: Node, state_dir: Path = STATE_DIR) -> int | None:
    """The PID of the proxy's sheer master, if it runs."""
    pid = read_pid(state(node, state_dir) / "sheer.pid")
    return pid if pid is not None and alive(pid) else None


def start_sheer(node: Node, state_dir: Path = STATE_DIR, progress: Progress = build._quiet,
                wait: bool = True) -> int:
    """Start sheer on a proxy (`daemon on;`): returns the master's PID once it listens."""
    if running(node, state_dir) is not None:
        raise LabError(f"sheer already runs on {node.name}")
    out = state(node, state_dir) / "output.log"
    with out.open("ab") as log:
        # the daemon keeps stderr: a file, never a pipe this process would wait on
        started = subprocess.run(["ip", "netns", "exec", node.netns, sys.executable, "-m", "sheer", "-c",
                                  str(config_path(node, state_dir))],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=False, timeout=30)
    if started.returncode != 0:
        raise LabError(f"sheer on {node.name} exited {started.returncode}: {out.read_text()[-400:]}")
    wait_for(lambda: running(node, state_dir) is not None and ("udp", 53) in listeners(node.netns), 10.0,
             f"sheer to listen on {node.name}")
    pid = running(node, state_dir)
    assert pid is not None
    progress(f"{node.name}: sheer runs (master pid {pid})")
    return pid


def stop_sheer(node: Node, state_dir: Path = STATE_DIR, progress: Progress = build._quiet,
               timeout: float = 10.0) -> None:
    """`sheer -s quit` on a proxy, and wait until its master is gone."""
    pid = running(node, state_dir)
    if pid is None:
        progress(f"{node.name}: sheer is not running")
        return
    _sheer(node.netns, "-c", str(config_path(node, state_dir)), "-s", "quit")
    wait_for(lambda: not alive(pid), timeout, f"sheer on {node.name} (pid {pid}) to stop")
    progress(f"{node.name}: sheer stopped (-s quit)")


def proxy(k: int, state_dir: Path = STATE_DIR) -> Node:
    topo = current(state_dir)
    if not topo.fleet:
        raise LabError("no fleet is up: `sheer lab up --fleet N` builds one")
    if not 1 <= k <= topo.fleet:
        raise LabError(f"the fleet has proxies 1 to {topo.fleet}, not {k}")
    return topo.node(f"proxy{k}")


# --- health and removal -----------------------------------------------------------------------

def problems_of(topo: Topology, state_dir: Path = STATE_DIR) -> list[str]:
    """What the fleet lacks besides the topology (sheer.lab.inspect.verify): BIRD everywhere, every
    proxy's BGP session up at the edge, the upstreams' origin NAT for the fleet's VIP."""
    if current(state_dir).fleet != topo.fleet:
        return [f"the lab has no fleet of {topo.fleet}"]
    problems = [f"{n.name}: BIRD is not running" for n in topo.nodes
                if (n.role == "edge" or n in topo.fleet_proxies) and bird.own_pid(n, state_dir) is None]
    if problems:
        return problems
    up = bird.established(topo.node("edge"), state_dir)
    problems += [f"edge: no BGP session with {p.name}" for p in topo.fleet_proxies if p.name not in up]
    return problems


def remove(state_dir: Path = STATE_DIR, progress: Progress = build._quiet) -> None:
    """Take the fleet away and leave the article's lab as it was. Safe to run any number of times."""
    build.require_root()
    with build.lab_lock():
        topo = current(state_dir)
        _remove(topo if topo.fleet else fleet(FLEET_MAX), state_dir, progress)


def _remove(topo: Topology, state_dir: Path, progress: Progress) -> None:
    existing = netns_list()
    for node in topo.fleet_proxies:
        if node.netns not in existing:
            continue
        pid = running(node, state_dir)
        if pid is not None:
            progress(f"{node.name}: stopping sheer (pid {pid})")
            signal_and_wait(pid)
        if config_path(node, state_dir).exists():
            _sheer(node.netns, "net", "revert", "-c", str(config_path(node, state_dir)), check=False)
    conf = upstream_config(state_dir)
    for up in topo.upstreams:
        if up.netns in existing and conf.exists():
            _sheer(up.netns, "net", "revert", "-c", str(conf), "--role", "upstream", "--host",
                   str(up.address()), check=False)
    for name in ("client", "rr"):
        if topo.node(name).netns in existing:
            netns_exec(topo.node(name).netns, "ip", "route", "del", str(FLEET_NET), check=False)
    if topo.node("rr").netns in existing:
        _rr_ruleset(topo, fleet_vip=False)
    build.delete_namespaces([n.netns for n in topo.nodes if n.role == "edge" or n in topo.fleet_proxies],
                            progress)
    if topo.switch_netns in existing:
        netns_exec(topo.switch_netns, "ip", "link", "del", topo.segment("fabric").bridge, check=False)
    for node in topo.nodes:
        if node.role == "edge" or node in topo.fleet_proxies:
            shutil.rmtree(state(node, state_dir), ignore_errors=True)
    for path in (state_dir / "fleet", conf):
        path.unlink(missing_ok=True)
