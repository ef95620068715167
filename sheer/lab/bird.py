"""BIRD 2 in the lab's fleet: the edge router's BGP sessions to every proxy and the ECMP route they
build, each proxy's BIRD that announces what sheer's fragment says. The lab's BIRDs run only in the
lab's namespaces, with configuration, control socket, pid file and log in the node's state
directory (`bird -c DIR/bird.conf -s DIR/bird.ctl -P DIR/bird.pid`): never a system service, and
ended by the PID they wrote.

AS numbers are private (RFC 6996): the edge is AS 65000, proxyK AS 65000+K, one eBGP session each
over the fabric segment. BGP's best path would keep one of the equal routes; `merge paths on` in the
edge's kernel protocol installs all of them as one multipath route (what Debian's BIRD 2.0 can do:
it cannot program a resilient nexthop group, see the README's "Fleet" section).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sheer.lab.errors import LabError
from sheer.lab.procs import alive, cmdline, netns_exec, read_pid, run, signal_and_wait
from sheer.lab.topology import (
    EDGE_AS,
    EDGE_FABRIC,
    FLEET_VIP,
    STATE_DIR,
    Node,
    Topology,
    proxy_as,
    proxy_fabric,
)

BIRD = "/usr/sbin/bird"
BIRDC = "/usr/sbin/birdc"
# Timers short enough that a lab comes up in seconds: the first connection is tried 1 s after start,
# a refused one again 2 s later; a dead peer is noticed after the hold time. sheer's announcements do
# not depend on them: a withdrawal is an UPDATE on an established session, sent at once.
TIMERS = """    connect delay time 1;
    connect retry time 2;
    error wait time 1, 5;
    hold time 9;
    keepalive time 3;"""


def node_dir(node: Node, state_dir: Path = STATE_DIR) -> Path:
    return state_dir / node.name


def socket(node: Node, state_dir: Path = STATE_DIR) -> Path:
    return node_dir(node, state_dir) / "bird.ctl"


def pid_file(node: Node, state_dir: Path = STATE_DIR) -> Path:
    return node_dir(node, state_dir) / "bird.pid"


def fragments(node: Node, state_dir: Path = STATE_DIR) -> Path:
    """Where a proxy's BIRD includes sheer's fragment from (`bird_fragment` in sheer's configuration)."""
    return node_dir(node, state_dir) / "bird.d"


def index(node: Node) -> int:
    return int(node.name.removeprefix("proxy"))


def edge_conf(topo: Topology, state_dir: Path = STATE_DIR) -> str:
    edge = topo.node("edge")
    peers = "".join(
        f"\nprotocol bgp {p.name} from proxies {{ "
        f"neighbor {proxy_fabric(index(p))} as {proxy_as(index(p))}; }}"
        for p in topo.fleet_proxies)
    return f"""# BIRD 2 on the lab's edge: eBGP with every proxy, their routes merged into one ECMP route
router id {EDGE_FABRIC};
log "{node_dir(edge, state_dir) / 'bird.log'}" all;

protocol device {{ }}

protocol kernel {{
    ipv4 {{ import none; export all; }};
    merge paths on;         # equal routes from several proxies: one multipath route in the main table
}}

template bgp proxies {{
    local {EDGE_FABRIC} as {EDGE_AS};
    ipv4 {{ import where net = {FLEET_VIP}/32; export none; }};
{TIMERS}
}}
{peers}
"""


def proxy_conf(node: Node, state_dir: Path = STATE_DIR) -> str:
    k = index(node)
    return f"""# BIRD 2 on {node.name}: one eBGP session to the edge; it announces what sheer's fragment says
router id {proxy_fabric(k)};
log "{node_dir(node, state_dir) / 'bird.log'}" all;

protocol device {{ }}

# sheer's fragment (`bird_fragment` in sheer.conf): `protocol static sheer_announce` with a route for
# each VIP sheer should receive traffic for now. A glob, so BIRD starts before the fragment exists.
include "{fragments(node, state_dir)}/*.conf";

protocol bgp edge {{
    local {proxy_fabric(k)} as {proxy_as(k)};
    neighbor {EDGE_FABRIC} as {EDGE_AS};
    ipv4 {{ import none; export where proto = "sheer_announce"; }};
{TIMERS}
}}
"""


def start(node: Node, conf: str, state_dir: Path = STATE_DIR) -> None:
    """Write the node's configuration and start its BIRD (it daemonizes and writes its pid file)."""
    d = node_dir(node, state_dir)
    d.mkdir(parents=True, exist_ok=True)
    if node.role == "proxy":
        fragments(node, state_dir).mkdir(exist_ok=True)
    (d / "bird.conf").write_text(conf)
    netns_exec(node.netns, BIRD, "-c", str(d / "bird.conf"), "-s", str(socket(node, state_dir)),
               "-P", str(pid_file(node, state_dir)))


def own_pid(node: Node, state_dir: Path = STATE_DIR) -> int | None:
    """The PID of the node's BIRD, only if it is still the process the lab started (PIDs get reused)."""
    pid = read_pid(pid_file(node, state_dir))
    if pid is None or not alive(pid) or str(state_dir) not in cmdline(pid):
        return None
    return pid


def stop(node: Node, state_dir: Path = STATE_DIR) -> None:
    pid = own_pid(node, state_dir)
    if pid is not None:
        signal_and_wait(pid)


def birdc(node: Node, *args: str, state_dir: Path = STATE_DIR, check: bool = True) -> str:
    res = netns_exec(node.netns, BIRDC, "-s", str(socket(node, state_dir)), *args, check=False, timeout=10)
    if check and res.returncode != 0:
        raise LabError(f"birdc {' '.join(args)} on {node.name} failed: {(res.stderr or res.stdout).strip()}")
    return res.stdout


def established(node: Node, state_dir: Path = STATE_DIR) -> set[str]:
    """The BGP protocols of a node's BIRD that are up (`birdc show protocols`)."""
    up = set()
    for line in birdc(node, "show", "protocols", state_dir=state_dir, check=False).splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "BGP" and fields[5] == "Established":
            up.add(fields[0])
    return up


def nexthops(edge: Node, vip: str = str(FLEET_VIP)) -> list[str]:
    """The gateways of the VIP's route in the edge's main table (`ip -j route`), one per proxy
    announcing it; [] when nobody does."""
    out = run("ip", "-n", edge.netns, "-j", "route", "show", "exact", f"{vip}/32").stdout.strip()
    found: list[str] = []
    for route in json.loads(out) if out else []:
        if "gateway" in route:
            found.append(route["gateway"])
        found.extend(hop["gateway"] for hop in route.get("nexthops", []) if "gateway" in hop)
    return sorted(found)


def bird_routes(edge: Node, vip: str = str(FLEET_VIP), state_dir: Path = STATE_DIR) -> list[str]:
    """The protocols (proxyK) the edge's BIRD has a route for the VIP from (`birdc show route`)."""
    text = birdc(edge, "show", "route", "for", f"{vip}/32", state_dir=state_dir, check=False)
    return sorted(set(re.findall(r"unicast \[(\w+) ", text)))
