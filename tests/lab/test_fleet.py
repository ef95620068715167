"""The fleet lab's contract (`sheer lab up --fleet N`): an edge router that learns the VIP over BGP from
every proxy and spreads flows over them with ECMP, each proxy running sheer, which announces the VIP
only while it can serve it. Witnesses: the edge's own `ip -j route` and `birdc`, `dig` on the client,
the upstreams' dnsmasq logs, sheer's error log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sheer.lab import bird, fleet, fleet_demo
from sheer.lab.inspect import listeners
from sheer.lab.procs import cmdline, netns_list, netns_pids, wait_for
from sheer.lab.testing import Lab
from sheer.lab.topology import FLEET_VIP, LAB, proxy_fabric

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module", autouse=True)
def _no_fleet_after(lab: Lab) -> Iterator[None]:
    """The next modules get the article's lab without the fleet (its health checks would reach their
    upstreams' witnesses)."""
    yield
    fleet.remove(lab.state_dir)


@pytest.fixture
def fleet2(fleet_of: Callable[[int], Lab]) -> Lab:
    return fleet_of(2)


def dig(lab: Lab, sport: int) -> str:
    res = lab.run("client", "dig", "+short", "+time=1", "+tries=1", "-b", f"192.168.99.1#{sport}",
                  f"@{FLEET_VIP}", "www.example.com")
    return res.stdout.strip()


def test_the_edge_learns_the_vip_over_bgp_from_every_proxy(fleet2: Lab) -> None:
    lab = fleet2
    names = netns_list()
    for node in ("client", "edge", "proxy1", "proxy2", "up1", "up4", "rr"):
        assert f"{LAB}-{node}" in names
    edge = lab.node("edge")
    assert bird.established(edge, lab.state_dir) == {"proxy1", "proxy2"}
    assert bird.nexthops(edge) == [str(proxy_fabric(1)), str(proxy_fabric(2))]
    route = lab.run("edge", "ip", "route", "show", "exact", f"{FLEET_VIP}/32").stdout
    assert "proto bird" in route, route
    assert lab.run("edge", "sysctl", "-n", "net.ipv4.fib_multipath_hash_policy").stdout.strip() == "1"


def test_the_client_is_answered_by_an_upstream_through_the_fleet(fleet2: Lab) -> None:
    lab = fleet2
    mark = lab.mark()
    answers = {sport: dig(lab, sport) for sport in range(40000, 40010)}
    assert all(a.startswith("172.16.0.1") for a in answers.values()), answers
    seen = {(s.src, s.sport): s.node for s in lab.seen(mark) if s.protocol == "dns"}
    for sport, answer in answers.items():
        # dnsmasq answers with its own address: the witness that logged the query answered it
        assert f"172.16.0.1{seen[('192.168.99.1', sport)].removeprefix('up')}" == answer


def withdrawn_within(lab: Lab, k: int, limit: float, act: Callable[[], object]) -> float:
    """Do `act`, return how long until the edge's main table no longer routes the VIP through proxyK."""
    edge, hop = lab.node("edge"), str(proxy_fabric(k))
    assert hop in bird.nexthops(edge)
    started = time.monotonic()
    act()
    wait_for(lambda: hop not in bird.nexthops(edge), limit, f"the edge to drop proxy{k}")
    took = time.monotonic() - started
    assert f"proxy{k}" not in bird.bird_routes(edge, state_dir=lab.state_dir)    # BIRD's view too
    return took


def announced_again(lab: Lab, k: int, limit: float = 3.0) -> float:
    edge, hop = lab.node("edge"), str(proxy_fabric(k))
    started = time.monotonic()
    wait_for(lambda: hop in bird.nexthops(edge), limit, f"proxy{k} to announce the VIP again")
    return time.monotonic() - started


def doctor(lab: Lab, k: int) -> dict[str, str]:
    """`sheer doctor` on proxyK: its announce findings, summary -> status."""
    node = fleet.proxy(k, lab.state_dir)
    conf = str(fleet.config_path(node, lab.state_dir))
    res = lab.run(node.name, sys.executable, "-m", "sheer", "doctor", "-c", conf, "--dsr", "origin", "--json",
                  timeout=60)
    return {f["summary"]: f["status"] for f in json.loads(res.stdout)["findings"] if f["check"] == "announce"}


def test_fleet_stop_withdraws_first_and_start_announces_again(fleet2: Lab) -> None:
    lab = fleet2
    node = fleet.proxy(2, lab.state_dir)
    before = fleet.running(node, lab.state_dir)
    assert before is not None
    stopping: list[subprocess.Popen[str]] = []
    # two Pythons start first (the lab's CLI, then `sheer -s quit`): the 1 s bound from the signal is
    # test_fleet_flows's; here the command as a whole
    took = withdrawn_within(lab, 2, 5.0, lambda: stopping.append(subprocess.Popen(
        [sys.executable, "-m", "sheer", "lab", "fleet", "stop", "2"], text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)))
    print(f"`sheer lab fleet stop 2`: proxy2 withdrawn from the edge's table in {took * 1000:.0f} ms "
          "(the command's start included)")
    out, _ = stopping[0].communicate(timeout=30)
    assert stopping[0].returncode == 0 and "proxy2: sheer stopped (-s quit)" in out, out
    assert fleet.running(node, lab.state_dir) is None
    # the doctor on proxy2 says what the edge shows: the session is up, the VIP not announced
    assert "proxy2" in bird.established(lab.node("edge"), lab.state_dir)
    found = doctor(lab, 2)
    assert found["BGP session edge is established"] == "ok", found
    assert found[f"{FLEET_VIP} is not announced: no running sheer holds its device sheer-ac0a8640a"] == \
        "warning", found
    assert ("udp", 53) not in listeners(node.netns)
    log = (fleet.state(node, lab.state_dir) / "error.log").read_text()
    withdrew, drained = log.rfind("VIP 192.168.100.10: withdrawn"), log.rfind("gracefully shutting down")
    assert 0 <= withdrew < drained, log[-600:]          # withdrawn first, then the workers drain
    after = fleet.start_sheer(node, lab.state_dir)
    assert after != before and fleet.running(node, lab.state_dir) == after
    print(f"proxy2 announced again {announced_again(lab, 2):.2f} s after it listened")
    found = doctor(lab, 2)
    assert found[f"{FLEET_VIP} is announced (sheer-ac0a8640a up), exported to edge"] == "ok", found
    assert all(status == "ok" for status in found.values()), found


def test_sigkill_withdraws_with_the_device(fleet2: Lab) -> None:
    lab = fleet2
    node = fleet.proxy(1, lab.state_dir)
    pid = fleet.running(node, lab.state_dir)
    assert pid is not None
    device = lab.run("proxy1", "ip", "-br", "link", "show", "sheer-ac0a8640a").stdout
    assert "UP" in device, device
    took = withdrawn_within(lab, 1, 3.0, lambda: os.kill(pid, signal.SIGKILL))
    print(f"SIGKILL: proxy1 withdrawn from the edge's table in {took * 1000:.0f} ms")
    assert lab.run("proxy1", "ip", "link", "show", "sheer-ac0a8640a").returncode != 0   # gone with sheer
    wait_for(lambda: not [p for p in netns_pids(node.netns) if cmdline(p).startswith("sheer:")], 5,
             "proxy1's workers to follow their master")
    fleet.start_sheer(node, lab.state_dir)
    announced_again(lab, 1)


def test_a_proxy_whose_upstreams_all_fail_withdraws(fleet2: Lab) -> None:
    lab = fleet2
    # proxy2's own probes cannot reach any upstream (the clients' datagrams it forwards still can)
    block = ("table ip sheer_test {\n chain out {\n  type filter hook output priority 0;\n"
             "  udp dport 53 drop\n }\n}\n")
    res = subprocess.run(["ip", "netns", "exec", lab.node("proxy2").netns, "nft", "-f", "-"], input=block,
                         text=True, capture_output=True, check=False)
    assert res.returncode == 0, res.stderr
    try:
        took = withdrawn_within(lab, 2, 10.0, lambda: None)
        print(f"upstreams unreachable from proxy2: withdrawn {took:.1f} s later (interval 1s, fails 2)")
        assert str(proxy_fabric(1)) in bird.nexthops(lab.node("edge"))       # the other one stays
        log = (fleet.state(lab.node("proxy2"), lab.state_dir) / "error.log").read_text()
        assert 'withdrawn (sheer-ac0a8640a down): upstream "dns_upstreams" has no usable server' in log
    finally:
        lab.run("proxy2", "nft", "delete", "table", "ip", "sheer_test")
    announced_again(lab, 2, 5.0)


def test_the_fleet_demo(fleet2: Lab, tmp_path: Path) -> None:
    said: list[str] = []
    assert fleet_demo.main(tmp_path, 2, said.append) == 0, "\n".join(said)
    report = (tmp_path / "fleet.txt").read_text()
    assert "UNEXPECTED" not in report
    assert "ok: proxy2 withdrawn, the others still announce" in report
    assert "datagrams each proxy forwarded: proxy1 300, proxy2 0" in report        # all through proxy1
    assert f"ok: {fleet_demo.CLIENTS} of {fleet_demo.CLIENTS} clients answered by the same upstream" in report
    assert fleet.running(fleet.proxy(2, fleet2.state_dir), fleet2.state_dir) is not None   # back
