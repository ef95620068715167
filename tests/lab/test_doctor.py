"""sheer doctor in the lab: break one thing on purpose, doctor names it and its fix; run the fix, doctor is
clean and the demo step (curl, dig through the proxy) works again. Everything broken is broken inside the
lab's namespaces and put back in a `finally`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from test_transparency import CLIENT, VIP, answer, dig

from sheer.lab import configs
from sheer.lab.testing import Lab

pytestmark = pytest.mark.lab

ORIGIN = ("--role", "upstream", "--host", "172.16.0.11", "--dsr", "origin", "--vip", VIP, "--via",
          "172.16.0.254")


def doctor(lab: Lab, node: str, conf: Path, *args: str,
           prefix: tuple[str, ...] = ()) -> tuple[int, list[dict[str, Any]]]:
    res = lab.run(node, *prefix, sys.executable, "-m", "sheer", "doctor", "-c", str(conf), "--json", *args,
                  timeout=30)
    assert res.stdout, res.stderr
    return res.returncode, json.loads(res.stdout)["findings"]


def problems(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in findings if f["status"] == "problem"]


def run_fix(lab: Lab, node: str, finding: dict[str, Any]) -> None:
    """Run the fix doctor printed, as printed (`sheer` is this checkout's `python -m sheer`)."""
    for line in finding["fix"]:
        command = line.split("   #")[0].strip()
        if not command or command.startswith("#"):
            continue
        if command.startswith("sheer "):
            command = f"{sys.executable} -m {command}"
        lab.run(node, "sh", "-c", command, check=True)


def assert_clean(lab: Lab, node: str, conf: Path, *args: str) -> None:
    code, findings = doctor(lab, node, conf, *args)
    assert code == 0 and not problems(findings), problems(findings)


# a TCP stream to the up1 witness on 8000: other users of the lab (the benchmark's reference plumbing)
# mark replies from ports 80 and 53, never from 8000, so what is broken here stays broken
STREAM = configs.HEADER + """stream {
    upstream witness { server 172.16.0.11:8000; }
    server { listen 8000; proxy_bind $remote_addr transparent; proxy_pass witness; }
}
"""
CONNECT = ("import socket\n"
           f"s = socket.create_connection(('{VIP}', 8000), 2)\n"
           "s.settimeout(2)\n"
           "try: print(s.recv(200).decode())\n"
           "except OSError as e: print(e)\n")


def curl(lab: Lab) -> str:
    """The demo step: what the upstream says about who connected."""
    return lab.python("client", CONNECT).stdout


@contextmanager
def method(lab: Lab, name: str, text: str) -> Iterator[Path]:
    conf = Path(lab.state_dir) / f"doctor-{name}.conf"
    conf.write_text(text)
    with lab.applied(name, text), lab.proxy(text):
        yield conf


@pytest.fixture
def transparency(lab: Lab, sheer_ready: None) -> Iterator[Path]:
    with method(lab, "transparency", STREAM) as conf:
        assert_clean(lab, "proxy", conf)
        yield conf


def test_missing_ip_rule(lab: Lab, transparency: Path) -> None:
    lab.run("proxy", "ip", "rule", "del", "fwmark", "1", "lookup", "100")   # (another lab user may have)
    code, findings = doctor(lab, "proxy", transparency)
    assert code == 1
    found = {f["check"]: f for f in problems(findings)}
    rule = found["policy routing"]
    assert "no `ip rule`" in rule["summary"]
    assert rule["fix"] == ["ip rule add fwmark 1 lookup 100 priority 32765"]
    assert "You connected" not in curl(lab)
    run_fix(lab, "proxy", rule)
    assert_clean(lab, "proxy", transparency)
    assert f"You connected from {CLIENT}:" in curl(lab)


def test_missing_mark_rule(lab: Lab, transparency: Path) -> None:
    lab.run("proxy", "nft", "flush", "chain", "ip", "sheer", "prerouting", check=True)
    assert "You connected" not in curl(lab)
    code, findings = doctor(lab, "proxy", transparency)
    assert code == 1
    # one cause, one problem: the missing mark rule, which the unanswered transparent probe shows too
    [probe] = [f for f in problems(findings) if "mark counters" in f["check"]]
    assert probe["check"] == "policy routing, mark counters" and probe["symptoms"] == 2
    assert "no rule marks the upstreams' replies" in probe["summary"]
    assert any("transparent probe" in e for e in probe["evidence"])
    assert probe["fix"] == [f"sheer net apply -c {transparency}"]
    run_fix(lab, "proxy", {"fix": probe["fix"][:1]})
    assert_clean(lab, "proxy", transparency)
    assert f"You connected from {CLIENT}:" in curl(lab)


def test_one_missing_route_is_one_problem(lab: Lab, transparency: Path) -> None:
    """The proxy loses its route to the upstreams: every probe of every upstream fails, and so does the
    transparent probe; doctor says one thing, with one fix."""
    lab.run("proxy", "ip", "route", "del", "172.16.0.0/24", "dev", "sheer-int", check=True)
    try:
        code, findings = doctor(lab, "proxy", transparency)
        assert code == 1
        [found] = problems(findings)
        # ICMP and 8000/tcp of the upstream, and the transparent probe
        assert found["cause"] == "no route to the upstreams" and found["symptoms"] == 3
        assert found["summary"].startswith("no route from here to 172.16.0.11: ")
        assert found["fix"][0].startswith("ip route get 172.16.0.11")
        assert not [f for f in findings if f["status"] == "ok" and "?" in " ".join(f["evidence"])]
    finally:
        lab.run("proxy", "ip", "route", "replace", "172.16.0.0/24", "dev", "sheer-int", "src", "172.16.0.1")
    assert_clean(lab, "proxy", transparency)


def test_src_valid_mark_without_accept_local(lab: Lab, transparency: Path) -> None:
    keys = ("net.ipv4.conf.sheer-int.src_valid_mark", "net.ipv4.conf.sheer-int.accept_local")
    lab.run("proxy", "sysctl", "-qw", f"{keys[0]}=1", check=True)
    try:
        assert "You connected" not in curl(lab)                 # the upstream's replies are martians now
        code, findings = doctor(lab, "proxy", transparency)
        assert code == 1
        [found] = [f for f in problems(findings) if f["check"] == "rp_filter/src_valid_mark/accept_local"]
        assert "src_valid_mark=1 without accept_local=1 on sheer-int breaks Method 1" in found["summary"]
        run_fix(lab, "proxy", {"fix": found["fix"][:1]})
        assert_clean(lab, "proxy", transparency)
        assert f"You connected from {CLIENT}:" in curl(lab)
    finally:
        lab.run("proxy", "sysctl", "-qw", *(f"{k}=0" for k in keys))


def test_stray_masquerade(lab: Lab, transparency: Path) -> None:
    script = ('table ip stray {\n chain post {\n  type nat hook postrouting priority srcnat;\n'
              '  oifname "sheer-int" masquerade\n }\n}\n')
    lab.run("proxy", "sh", "-c", f"printf '{script}' | nft -f -", check=True)
    try:
        assert "You connected from 172.16.0.1:" in curl(lab)   # the upstream sees the proxy now
        code, findings = doctor(lab, "proxy", transparency)
        assert code == 1
        [found] = problems(findings)
        assert found["check"] == "stray rules" and "masquerade" in found["summary"]
        assert found["fix"][0].startswith("nft delete rule ip stray post handle ")
        run_fix(lab, "proxy", found)
        assert_clean(lab, "proxy", transparency)
        assert f"You connected from {CLIENT}:" in curl(lab)
    finally:
        lab.run("proxy", "nft", "delete", "table", "ip", "stray")


def test_without_the_capability(lab: Lab, transparency: Path) -> None:
    setpriv = ("setpriv", "--bounding-set=-net_raw,-net_admin", "--inh-caps=-all")
    code, findings = doctor(lab, "proxy", transparency, prefix=setpriv)
    assert code == 1
    [found] = [f for f in problems(findings) if f["check"] == "privileges"]
    assert "cannot set IP_TRANSPARENT" in found["summary"]
    assert any("neither CAP_NET_RAW nor CAP_NET_ADMIN" in e for e in found["evidence"])
    assert found["fix"][0].startswith("sudo sheer -c ")
    # the fix: run it with the capability (as the fixture does); doctor and curl agree
    assert_clean(lab, "proxy", transparency)
    assert f"You connected from {CLIENT}:" in curl(lab)


def test_forwarding_off_for_router_nat(lab: Lab, sheer_ready: None) -> None:
    with method(lab, "dsr-router", configs.DSR) as conf:
        assert_clean(lab, "proxy", conf, "--dsr", "router")
        lab.run("proxy", "sysctl", "-qw", "net.ipv4.ip_forward=0", check=True)
        code, findings = doctor(lab, "proxy", conf, "--dsr", "router")
        assert code == 1
        [found] = problems(findings)
        assert found["check"] == "ip_forward" and found["fix"] == ["sysctl -w net.ipv4.ip_forward=1"]
        run_fix(lab, "proxy", found)
        assert_clean(lab, "proxy", conf, "--dsr", "router")
        assert answer(dig(lab)).startswith("172.16.0.")


def test_strict_rp_filter_on_the_return_router(lab: Lab, sheer_ready: None) -> None:
    keys = ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.sheer-int.rp_filter")
    with method(lab, "dsr-origin", configs.DSR) as conf:
        assert_clean(lab, "up1", conf, *ORIGIN)
        lab.run("rr", "sysctl", "-qw", *(f"{k}=1" for k in keys), check=True)
        try:
            code, findings = doctor(lab, "up1", conf, *ORIGIN)
            assert code == 1
            [found] = problems(findings)
            assert found["check"] == "return router" and "strictly on sheer-int" in found["summary"]
            assert found["fix"] == [f"ip netns exec {lab.node('rr').netns} sysctl -w {keys[0]}=2 {keys[1]}=2"]
            run_fix(lab, "up1", found)
            assert_clean(lab, "up1", conf, *ORIGIN)
            answers = {answer(dig(lab)) for _ in range(4)}
            assert "172.16.0.11" in answers
        finally:
            lab.run("rr", "sysctl", "-qw", *(f"{k}=2" for k in keys))
