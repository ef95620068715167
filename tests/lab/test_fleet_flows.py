"""The fleet behaves as one (issue 20), with 2 and 3 proxies and 300 client ip:port pairs. Witnesses,
none of them sheer: each proxy's own kernel (`nstat`'s IpForwDatagrams, and an nft set of the client
ports that reached it), the upstreams' dnsmasq logs (which upstream a client's query reached), the
client's answers (dnsmasq answers with its own address), the edge's `ip route` and `birdc show route`.

ECMP here: the edge hashes each flow (fib_multipath_hash_policy=1). A datagram sent by a local
socket carries that socket's random flow hash into the edge (veth keeps it), so a client port asked
again from a new socket may land on another proxy: each round below is new sockets, new placement."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from sheer.lab import bird, fleet, flows
from sheer.lab.procs import wait_for
from sheer.lab.testing import Lab
from sheer.lab.topology import FLEET_VIP, proxy_fabric

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module", autouse=True)
def _no_fleet_after(lab: Lab) -> Iterator[None]:
    """The next modules get the article's lab without the fleet (its health checks would reach their
    upstreams' witnesses)."""
    yield
    fleet.remove(lab.state_dir)

CLIENTS = 300
WITNESS = "sheer_test_flows"
# each proxy remembers the client ports whose datagrams reached it (prerouting sees the client's
# source port whatever the fast path rewrote at ingress)
WITNESS_RULES = f"""table ip {WITNESS} {{
  set ports {{ type inet_service; flags dynamic; size 65536; }}
  chain pre {{
    type filter hook prerouting priority -300;
    ip saddr 192.168.99.1 ip daddr != 192.168.98.0/24 udp dport 53 add @ports {{ udp sport }}
  }}
}}
"""


@pytest.fixture(scope="module", params=[2, 3], ids=["2proxies", "3proxies"])
def fleet_n(fleet_of: Callable[[int], Lab], request: pytest.FixtureRequest) -> Iterator[tuple[Lab, int]]:
    n: int = request.param
    lab = fleet_of(n)
    proxies = [f"proxy{k}" for k in range(1, n + 1)]
    try:
        for p in proxies:
            lab_nft(lab, p, WITNESS_RULES)
        yield lab, n
    finally:
        for p in proxies:
            lab.run(p, "nft", "delete", "table", "ip", WITNESS)


def lab_nft(lab: Lab, node: str, rules: str) -> None:
    res = subprocess.run(["ip", "netns", "exec", lab.node(node).netns, "nft", "-f", "-"], input=rules,
                         text=True, capture_output=True, check=False)
    assert res.returncode == 0, res.stderr


def reached(lab: Lab, n: int) -> dict[int, set[int]]:
    """proxyK -> the client ports its kernel saw since the last forget()."""
    out: dict[int, set[int]] = {}
    for k in range(1, n + 1):
        text = lab.run(f"proxy{k}", "nft", "-j", "list", "set", "ip", WITNESS, "ports", check=True).stdout
        elems = next(i["set"] for i in json.loads(text)["nftables"] if "set" in i).get("elem", [])
        out[k] = {e if isinstance(e, int) else e["elem"]["val"] for e in elems}
    return out


def forget(lab: Lab, n: int) -> None:
    for k in range(1, n + 1):
        lab.run(f"proxy{k}", "nft", "flush", "set", "ip", WITNESS, "ports", check=True)


def forwarded(lab: Lab, n: int) -> dict[int, int]:
    return {k: lab.counters(f"proxy{k}")["Ip.ForwDatagrams"] for k in range(1, n + 1)}


def upstream_of(lab: Lab, mark: dict[str, dict[str, int]]) -> dict[int, set[str]]:
    """client port -> the upstreams whose dnsmasq logged a query from it (after `mark`)."""
    out: dict[int, set[str]] = {}
    for s in lab.seen(mark):
        if s.protocol == "dns" and s.src == "192.168.99.1" and s.sport >= flows.FIRST_PORT:
            out.setdefault(s.sport, set()).add(s.dst)
    return out


def one_round(lab: Lab, n: int) -> tuple[dict[int, str | None], dict[int, set[int]], dict[int, int]]:
    """Every client asks once: (answers by port, ports by proxy, forwarded datagrams by proxy)."""
    forget(lab, n)
    before = forwarded(lab, n)
    queries = flows.ask(lab.node("client").netns, CLIENTS)
    after = forwarded(lab, n)
    return flows.answers(queries), reached(lab, n), {k: after[k] - before[k] for k in after}


def test_every_proxy_gets_a_share_and_every_client_keeps_its_upstream(fleet_n: tuple[Lab, int]) -> None:
    lab, n = fleet_n
    mark = lab.mark()
    first, ports, counted = one_round(lab, n)
    lost = [p for p, a in first.items() if a is None]
    assert not lost, f"{len(lost)} of {CLIENTS} queries unanswered: {lost[:10]}"
    print(f"{n} proxies, {CLIENTS} clients: ports by proxy {[len(ports[k]) for k in ports]}, "
          f"IpForwDatagrams by proxy {counted}")
    for k in ports:
        assert len(ports[k]) >= CLIENTS // n // 3, (k, {j: len(p) for j, p in ports.items()})
        assert counted[k] >= len(ports[k]), (k, counted, len(ports[k]))   # nstat agrees: it forwarded them
    assert sum(len(p) for p in ports.values()) == CLIENTS and set().union(*ports.values()) == set(first)
    logged = upstream_of(lab, mark)
    for port, answer in first.items():
        assert logged[port] == {answer}, (port, logged.get(port), answer)   # the logger answered it

    # new sockets, new ECMP placement: each client still reaches the upstream it had
    mark = lab.mark()
    second, ports2, _ = one_round(lab, n)
    proxy_of = {p: k for k, ps in ports.items() for p in ps}
    proxy_of2 = {p: k for k, ps in ports2.items() for p in ps}
    moved = [p for p in second if proxy_of2.get(p) != proxy_of[p]]
    print(f"second round: {len(moved)} of {CLIENTS} clients came through another proxy")
    assert second == first, {p: (first[p], second[p]) for p in second if second[p] != first[p]}
    logged = upstream_of(lab, mark)
    assert all(logged[p] == {first[p]} for p in second)


def quit_cli(lab: Lab, k: int) -> None:
    node = fleet.proxy(k, lab.state_dir)
    lab.run(node.name, sys.executable, "-m", "sheer", "-c", str(fleet.config_path(node, lab.state_dir)), "-s",
            "quit", check=True)


def test_quit_withdraws_and_the_flows_move_with_their_upstream(fleet_n: tuple[Lab, int]) -> None:
    lab, n = fleet_n
    edge, hop = lab.node("edge"), str(proxy_fabric(n))
    reference, _, _ = one_round(lab, n)
    forget(lab, n)
    mark = lab.mark()
    # the clients keep asking (each port from one socket: one ECMP placement) while proxyN quits
    rounds, gap = 5, 0.002
    result: list[list[flows.Query]] = []
    asking = threading.Thread(target=lambda: result.append(flows.ask(
        lab.node("client").netns, CLIENTS, rounds=rounds, gap=gap)))
    asking.start()
    try:
        time.sleep(0.8)
        started = time.monotonic()
        quit_cli(lab, n)
        signalled = time.monotonic()
        wait_for(lambda: hop not in bird.nexthops(edge), 1.0, f"the edge to drop proxy{n}")
        withdrawn = time.monotonic()
        assert f"proxy{n}" not in bird.bird_routes(edge, state_dir=lab.state_dir)
    finally:
        asking.join()
    print(f"`sheer -s quit` on proxy{n}: withdrawn from the edge's table "
          f"{(withdrawn - signalled) * 1000:.0f} ms after the command returned "
          f"({(withdrawn - started) * 1000:.0f} ms after it started)")
    queries = result[0]
    assert len(queries) == rounds * CLIENTS
    lost_during = [q for q in queries if q.answer is None and started <= q.sent_at <= withdrawn]
    lost_after = [q for q in queries if q.answer is None and q.sent_at > withdrawn]
    lost_before = [q for q in queries if q.answer is None and q.sent_at < started]
    during = sum(1 for q in queries if started <= q.sent_at <= withdrawn)
    print(f"lost while converging: {len(lost_during)} of {during}; after: {len(lost_after)}; "
          f"before: {len(lost_before)}")
    assert not lost_after and not lost_before
    changed = {q.port for q in queries if q.answer is not None and q.answer != reference[q.port]}
    assert not changed, sorted(changed)[:10]
    # who moved: ports proxyN carried, later seen by another proxy (the same socket all along)
    ports = reached(lab, n)
    moved = ports[n] & set().union(*(ports[k] for k in ports if k != n))
    others = [k for k in ports if k != n]
    reshuffled = {p for i in others for j in others if i < j for p in ports[i] & ports[j]} - ports[n]
    print(f"{len(ports[n])} clients were on proxy{n}; {len(moved)} moved to the others, upstream unchanged; "
          f"{len(reshuffled)} of the {len(set().union(*(ports[k] for k in others)) - ports[n])} others "
          "moved between the remaining proxies (plain multipath)")
    assert moved
    logged = upstream_of(lab, mark)
    assert all(logged[p] == {reference[p]} for p in moved)
    # and back
    wait_for(lambda: fleet.running(fleet.proxy(n, lab.state_dir), lab.state_dir) is None, 10,
             f"sheer on proxy{n} to stop")
    res = subprocess.run([sys.executable, "-m", "sheer", "lab", "fleet", "start", str(n)],
                         capture_output=True, text=True, check=False, timeout=30)
    assert res.returncode == 0, res.stderr
    started = time.monotonic()
    wait_for(lambda: hop in bird.nexthops(edge), 3.0, f"proxy{n} to announce {FLEET_VIP} again")
    took = time.monotonic() - started
    print(f"`sheer lab fleet start {n}`: announced again {took:.2f} s after it returned")
