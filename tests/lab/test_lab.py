"""The lab itself: topology, isolation, witnesses, repair, teardown. Assertions come from
independent observers (ip -j, curl, dig, nginx and dnsmasq logs, the kernel's counters)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sheer.lab import configs
from sheer.lab.inspect import addresses, routes, verify
from sheer.lab.procs import read_pid, signal_and_wait
from sheer.lab.testing import Lab, root_snapshot
from sheer.lab.topology import LAB, VIP, article
from sheer.lab.witness import pid_file

pytestmark = pytest.mark.lab


def test_topology_is_the_articles(lab: Lab) -> None:
    assert verify(lab.topo, lab.state_dir) == []
    assert root_snapshot()[1] == lab.baseline[1]  # nothing attached to the root namespace
    for node in lab.topo.nodes:
        links = {link["ifname"]: link for link in addresses(node.netns)}
        for iface in node.ifaces:
            assert links[iface.name]["addresses"] == [str(iface.address)]
            assert links[iface.name]["state"] == "UP"
    assert [r for r in routes(lab.node("client").netns) if " via " in r] == []
    for up in lab.topo.upstreams:
        assert "default via 172.16.0.1 dev sheer-int" in routes(up.netns)
    assert lab.run("proxy", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    assert lab.run("rr", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"


def test_client_cannot_reach_the_upstreams(lab: Lab) -> None:
    direct = lab.run("client", "curl", "-s", "-m", "1", "http://172.16.0.11/")
    assert direct.returncode == 7, direct  # "couldn't connect": no route at all
    # even a client that routes the internal net through the proxy or the return router gets
    # nowhere: the proxy does not forward, the return router forwards only the VIP's UDP out
    for gateway in ("192.168.99.10", "192.168.99.254"):
        lab.run("client", "ip", "route", "add", "172.16.0.0/24", "via", gateway, check=True)
        try:
            res = lab.run("client", "curl", "-s", "-m", "1", "http://172.16.0.11/")
            assert res.returncode != 0 and "connected" not in res.stdout, (gateway, res)
        finally:
            lab.run("client", "ip", "route", "del", "172.16.0.0/24", check=True)


def test_http_tcp_udp_witnesses_report_the_connection(lab: Lab) -> None:
    mark = lab.mark()
    for up in lab.topo.upstreams:
        res = lab.run("proxy", "curl", "-s", "-m", "2", f"http://{up.address()}/")
        assert res.stdout.startswith(f"Hello from {up.name}. You connected from 172.16.0.1:"), res
        assert res.stdout.rstrip().endswith(f"to {up.address()}:80")
    probe = (
        "import socket\n"
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)\n"
        "u.sendto(b'x', ('172.16.0.12', 8000)); print(u.recv(200).decode().strip())\n"
        "t = socket.create_connection(('172.16.0.13', 8000), 2); print(t.recv(200).decode().strip())\n"
    )
    udp, tcp = lab.python("proxy", probe).stdout.splitlines()
    assert udp.startswith("You connected from 172.16.0.1:") and udp.endswith("to 172.16.0.12:8000")
    assert tcp.startswith("You connected from 172.16.0.1:") and tcp.endswith("to 172.16.0.13:8000")
    seen = lab.seen(mark)
    assert {(s.node, s.protocol) for s in seen} >= {("up1", "http"), ("up4", "http"), ("up2", "udp"),
                                                    ("up3", "tcp")}
    assert {s.src for s in seen} == {"172.16.0.1"}


def test_dnsmasq_answers_with_the_upstreams_own_address(lab: Lab) -> None:
    mark = lab.mark()
    for up in lab.topo.upstreams:
        res = lab.run("proxy", "dig", "+short", "+time=1", "+tries=1", f"@{up.address()}", "www.example.com")
        assert res.stdout.strip() == str(up.address())
    health = lab.run("proxy", "dig", "+short", "+time=1", "@172.16.0.11", "TXT", "health.example.com")
    assert health.stdout.strip() == '"health.is.good"'
    dns = [s for s in lab.seen(mark) if s.protocol == "dns"]
    assert sorted(s.node for s in dns) == ["up1", "up1", "up2", "up3", "up4"]
    assert all(s.src == "172.16.0.1" and s.sport > 0 for s in dns)


def test_return_router_forwards_only_udp_from_the_vip(lab: Lab) -> None:
    listen = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('192.168.99.1', 5300)); "
        "s.settimeout(1.5)\ntry:\n    data, peer = s.recvfrom(100); print(peer[0], peer[1], data.decode())\n"
        "except TimeoutError:\n    print('nothing')\n"
    )
    send = (
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.SOL_IP, 19, 1)  # IP_TRANSPARENT: send as the VIP, like origin NAT\n"
        "s.bind((sys.argv[1], 5353)); time.sleep(0.3); s.sendto(b'reply', ('192.168.99.1', 5300))\n"
    )
    import subprocess

    lab.run("up1", "ip", "route", "add", "192.168.99.0/24", "via", "172.16.0.254", check=True)
    try:
        for source, expected in ((str(VIP), f"{VIP} 5353 reply"), ("172.16.0.11", "nothing")):
            client = subprocess.Popen(
                ["ip", "netns", "exec", lab.node("client").netns, "python3", "-c", listen],
                                      stdout=subprocess.PIPE, text=True
            )
            lab.run("up1", "python3", "-c", send, source, check=True)
            assert client.communicate(timeout=5)[0].strip() == expected
        tcp = lab.run("up1", "curl", "-s", "-m", "1", "http://192.168.99.1:9/")
        assert tcp.returncode == 28  # timed out: the SYN was dropped by the return router
    finally:
        lab.run("up1", "ip", "route", "del", "192.168.99.0/24", check=True)
    rules = json.loads(lab.run("rr", "nft", "-j", "list", "table", "ip", "sheer_rr", check=True).stdout)
    packets = [e["counter"]["packets"] for e in _exprs(rules)]
    assert packets[0] >= 1 and packets[1] >= 2  # accepted the VIP's reply, dropped the rest


def _exprs(ruleset: dict) -> list[dict]:
    return [
        expr
        for item in ruleset["nftables"]
        if "rule" in item
        for expr in item["rule"]["expr"]
        if "counter" in expr
    ]


def test_a_killed_half_lab_is_repaired_by_up(lab: Lab) -> None:
    lab.run("proxy", "true")  # the lab is up
    signal_and_wait(read_pid(pid_file(lab.node("up1"), "dnsmasq")) or 0)
    import subprocess

    subprocess.run(["ip", "netns", "delete", lab.node("up3").netns], check=True)
    problems = verify(lab.topo, lab.state_dir)
    assert any(lab.node("up3").netns in p for p in problems)
    assert lab.up() is True
    assert verify(lab.topo, lab.state_dir) == []
    res = lab.run("proxy", "dig", "+short", "+time=1", "@172.16.0.11", "www.example.com")
    assert res.stdout.strip() == "172.16.0.11"
    assert lab.up() is False  # healthy: nothing to do


def test_status_json(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    from sheer.cli.lab import main

    assert main(["status", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["up"] is True and st["problems"] == []
    by_name = {n["name"]: n for n in st["nodes"]}
    assert set(by_name) == {"switch", *(n.name for n in article().nodes)}
    cmds = " ".join(p["cmd"] for p in by_name["up2"]["processes"])
    assert "nginx: master" in cmds and "dnsmasq" in cmds


def test_down_twice_leaves_the_root_namespace_as_before(lab: Lab) -> None:
    ours = set(lab.topo.namespaces)
    lab.down()
    lab.down()
    netns, links = root_snapshot()

    def names(listing: str) -> set[str]:
        """Namespaces, without other labs' (another checkout's lab may come and go meanwhile)."""
        found = {line.split()[0] for line in listing.splitlines() if line.strip()}
        return {n for n in found if not re.match(r"sheer[A-Za-z0-9]{0,4}-", n) or n.startswith(f"{LAB}-")}

    assert not ours & names(netns)
    assert names(netns) == names(lab.baseline[0]) - ours
    assert links == lab.baseline[1]
    assert not lab.state_dir.exists()
    lab.up()


def test_reference_nginx_as_the_plain_reverse_proxy(lab: Lab) -> None:
    _plain_reverse_proxy(lab, "nginx")


def test_sheer_as_the_plain_reverse_proxy(lab: Lab, sheer_ready: None) -> None:
    _plain_reverse_proxy(lab, "sheer")


def _plain_reverse_proxy(lab: Lab, kind: str) -> None:
    with lab.proxy(configs.PLAIN, kind):  # type: ignore[arg-type]
        mark, before = lab.mark(), lab.counters("proxy")
        bodies = [lab.run("client", "curl", "-s", "-m", "2", "http://192.168.99.10/").stdout
                  for _ in range(4)]
        answers = [lab.run("client", "dig", "+short", "+time=1", "+tries=1", "@192.168.99.10",
                           "www.example.com").stdout.strip() for _ in range(4)]
        after = lab.counters("proxy")
    assert all("You connected from 172.16.0.1:" in b for b in bodies), bodies
    assert sorted(answers) == [str(n.address()) for n in lab.topo.upstreams]
    seen = lab.seen(mark)
    assert sorted(s.node for s in seen if s.protocol == "http") == ["up1", "up2", "up3", "up4"]
    assert {s.src for s in seen} == {"172.16.0.1"}
    assert after["Udp.InDatagrams"] - before["Udp.InDatagrams"] >= 8  # 4 queries + 4 answers
    assert after["Ip.ForwDatagrams"] == before["Ip.ForwDatagrams"]  # nothing forwarded: all proxied


def test_demo_with_the_reference_nginx_shows_every_method(lab: Lab, tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    from sheer.lab import demo

    printed: list[str] = []
    assert demo.main(out=tmp_path, proxy="nginx", echo=printed.append) == 0
    report = (tmp_path / "report.txt").read_text()
    assert report.count("result: ok") == 4, report
    assert "up1 (172.16.0.11) saw: http from 172.16.0.1:" in report  # plain
    assert "up1 (172.16.0.11) saw: http from 192.168.99.1:" in report  # transparency
    assert "forwarded 4 packets; return router forwarded 0" in report  # router NAT
    assert "forwarded 0 packets; return router forwarded 4" in report  # origin NAT
    for step in demo.STEPS:
        ET.parse(tmp_path / f"{step.method}.svg")
    assert verify(lab.topo, lab.state_dir) == []  # the demo's kernel state is gone again


def test_every_demo_step_passes_with_sheer(lab: Lab) -> None:
    """The article end to end with sheer as the proxy: plain, IP Transparency, DSR router NAT and
    DSR origin NAT, each judged by the demo's own witnesses (upstream logs, kernel counters)."""
    from sheer.lab import demo

    outcomes = {step.method: demo.run_step(step, "sheer") for step in demo.STEPS}
    assert {method: (o.verdict, o.reason) for method, o in outcomes.items()} == {
        method: ("ok", "") for method in outcomes}, "\n".join(
        line for o in outcomes.values() for line in o.lines)