"""sheer net apply/status/revert inside the lab's namespaces: what the kernel holds, before and after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sheer.lab import configs
from sheer.lab.testing import Lab
from sheer.lab.topology import RR_INTERNAL, VIP

pytestmark = pytest.mark.lab

DSR = configs.DSR
SYSCTLS = ("net.ipv4.ip_forward", "net.ipv4.udp_early_demux", "net.ipv4.conf.all.rp_filter",
           "net.ipv4.conf.sheer-int.rp_filter")


def write(tmp_path: Path, text: str, name: str = "lb.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def net(lab: Lab, node: str, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.run(node, sys.executable, "-m", "sheer", "net", *args, timeout=30)


def snapshot(lab: Lab, node: str) -> dict[str, object]:
    def j(*cmd: str) -> object:
        return json.loads(lab.run(node, *cmd, check=True).stdout or "null")
    return {
        "rules": j("ip", "-j", "rule"),
        "routes": j("ip", "-j", "route", "show", "table", "all"),
        "nft": j("nft", "-j", "list", "ruleset"),
        "sysctls": lab.run(node, "sysctl", *SYSCTLS, check=True).stdout,
    }


@pytest.fixture
def clean(lab: Lab) -> dict[str, dict[str, object]]:
    """Snapshots of the proxy and up1 before the test; the test must leave them exactly so."""
    return {node: snapshot(lab, node) for node in ("proxy", "up1")}


def assert_as_before(lab: Lab, clean: dict[str, dict[str, object]]) -> None:
    for node, before in clean.items():
        assert snapshot(lab, node) == before, f"{node} differs after revert"


@pytest.mark.parametrize("args", [
    ("-c", "{transparent}"),
    ("-c", "{transparent}", "--match", "ports", "--mark", "0x20", "--table", "120"),
    ("-c", "{dsr}", "--dsr", "router", "--masquerade"),
])
def test_proxy_apply_status_idempotent_revert(lab: Lab, tmp_path: Path, clean: dict[str, dict[str, object]],
                                              args: tuple[str, ...]) -> None:
    files = {"transparent": write(tmp_path, configs.TRANSPARENT), "dsr": write(tmp_path, DSR, "dsr.conf")}
    argv = [a.format(**files) for a in args]
    first = net(lab, "proxy", "apply", *argv)
    assert first.returncode == 0, first.stderr
    try:
        assert "applied" in first.stdout
        status = net(lab, "proxy", "status", *argv)
        assert status.returncode == 0, status.stdout + status.stderr
        applied = snapshot(lab, "proxy")
        again = net(lab, "proxy", "apply", *argv)
        assert again.returncode == 0 and "applied" not in again.stdout, again.stdout
        assert snapshot(lab, "proxy") == applied
        assert net(lab, "proxy", "status", *argv).returncode == 0
    finally:
        reverted = net(lab, "proxy", "revert", *argv)
    assert reverted.returncode == 0, reverted.stderr
    assert_as_before(lab, clean)
    nothing = net(lab, "proxy", "revert", *argv)
    assert nothing.returncode == 0 and "nothing to revert" in nothing.stdout


def test_status_reports_drift(lab: Lab, tmp_path: Path, clean: dict[str, dict[str, object]]) -> None:
    conf = write(tmp_path, configs.TRANSPARENT)
    assert net(lab, "proxy", "apply", "-c", conf).returncode == 0
    try:
        lab.run("proxy", "ip", "rule", "del", "fwmark", "1", "lookup", "100", check=True)
        status = net(lab, "proxy", "status", "-c", conf)
        assert status.returncode == 1
        assert "DRIFT ip rule add fwmark 1 lookup 100" in status.stdout
        assert net(lab, "proxy", "apply", "-c", conf).returncode == 0      # repairs it
        assert net(lab, "proxy", "status", "-c", conf).returncode == 0
    finally:
        net(lab, "proxy", "revert", "-c", conf)
    assert_as_before(lab, clean)


def test_failure_half_way_leaves_nothing(lab: Lab, tmp_path: Path,
                                         clean: dict[str, dict[str, object]]) -> None:
    conf = write(tmp_path,
                 DSR.replace("stream {", configs.http_block("$remote_addr transparent") + "\nstream {"))
    # the 5th item (the ip rule) fails: the sysctls, the nft table and the route must be taken back
    code = f"""
import sys
from sheer.cli import net as cli
from sheer.net import apply
real, calls = apply.ensure, []
def failing(item, before):
    calls.append(item)
    if len(calls) == 5:
        raise apply.KernelError("injected", 1)
    return real(item, before)
apply.ensure = failing
sys.exit(cli.main(["apply", "-c", {conf!r}]))
"""
    res = lab.run("proxy", sys.executable, "-c", code, timeout=30)
    assert res.returncode == 1
    assert "injected failed (1: Operation not permitted): needs CAP_NET_ADMIN" in res.stderr
    assert_as_before(lab, clean)
    assert "nothing to revert" in net(lab, "proxy", "revert", "-c", conf).stdout


def test_upstream_roles(lab: Lab, tmp_path: Path, clean: dict[str, dict[str, object]]) -> None:
    transparent = write(tmp_path, configs.TRANSPARENT)
    dsr = write(tmp_path, DSR, "dsr.conf")
    roles = [
        ["-c", transparent, "--role", "upstream", "--host", "172.16.0.11"],
        ["-c", dsr, "--role", "upstream", "--host", "172.16.0.11", "--dsr", "origin",
         "--vip", str(VIP), "--via", str(RR_INTERNAL)],
    ]
    for argv in roles:
        applied = net(lab, "up1", "apply", *argv)
        assert applied.returncode == 0, applied.stderr
        try:
            assert net(lab, "up1", "apply", *argv).returncode == 0
            status = net(lab, "up1", "status", *argv)
            assert status.returncode == 0, status.stdout
        finally:
            assert net(lab, "up1", "revert", *argv).returncode == 0
        assert_as_before(lab, clean)
    elsewhere = net(lab, "up2", "apply", *roles[0])
    assert elsewhere.returncode == 1 and "not an address of this network namespace" in elsewhere.stderr


def test_plan_problems_and_config_errors(lab: Lab, tmp_path: Path) -> None:
    loopback = write(tmp_path, "stream { server { listen 8080; proxy_bind $remote_addr transparent; "
                               "proxy_pass 127.0.0.1:80; } }\n")
    plan = net(lab, "proxy", "plan", "-c", loopback)
    assert plan.returncode == 0 and "# problem:" in plan.stdout and "on this host" in plan.stdout
    refused = net(lab, "proxy", "apply", "-c", loopback)
    assert refused.returncode == 1 and "nothing applied" in refused.stderr
    broken = write(tmp_path, "stream { server { listen 8080; proxy_responses -1; } }\n", "bad.conf")
    bad = net(lab, "proxy", "plan", "-c", broken)
    assert bad.returncode == 1 and bad.stderr.startswith("sheer: [emerg] ") and "bad.conf:1" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_root_netns_is_refused(tmp_path: Path) -> None:
    conf = write(tmp_path, configs.PLAIN)           # nothing to apply, should the guard ever fail
    res = subprocess.run([sys.executable, "-m", "sheer", "net", "apply", "-c", conf],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 1 and "refusing to change the root network namespace" in res.stderr


def test_reference_nginx_transparency_through_sheer_plumbing(lab: Lab, tmp_path: Path,
                                                             clean: dict[str, dict[str, object]]) -> None:
    """Debian's nginx with `proxy_bind $remote_addr transparent` works with only sheer's plumbing."""
    conf = write(tmp_path, configs.TRANSPARENT)
    assert net(lab, "proxy", "apply", "-c", conf).returncode == 0
    try:
        with lab.proxy(configs.TRANSPARENT, "nginx"):
            mark = lab.mark()
            http = lab.run("client", "curl", "-s", "-m", "3", "http://192.168.99.10/")
            assert "You connected from 192.168.99.1:" in http.stdout, http.stdout + http.stderr
            dns = lab.run("client", "dig", "+short", "+time=2", "+tries=1", "@192.168.99.10",
                          "www.example.com")
            assert dns.stdout.strip().startswith("172.16.0."), dns.stdout
            seen = lab.seen(mark)
            assert {s.protocol for s in seen} >= {"http", "dns"}
            assert all(s.src == "192.168.99.1" for s in seen), seen
    finally:
        net(lab, "proxy", "revert", "-c", conf)
    assert_as_before(lab, clean)


def test_reference_nginx_dsr_router_through_sheer_plumbing(lab: Lab, tmp_path: Path,
                                                           clean: dict[str, dict[str, object]]) -> None:
    conf = write(tmp_path, DSR)
    assert net(lab, "proxy", "apply", "-c", conf, "--dsr", "router").returncode == 0
    try:
        with lab.proxy(DSR, "nginx"):
            mark = lab.mark()
            answers = [lab.run("client", "dig", "+short", "+time=2", "+tries=1", "@192.168.99.10",
                               "www.example.com")
                       .stdout.strip() for _ in range(4)]
            assert all(a.startswith("172.16.0.") for a in answers), answers
            seen = lab.seen(mark)
            assert seen and all(s.src == "192.168.99.1" for s in seen), seen
    finally:
        net(lab, "proxy", "revert", "-c", conf)
    assert_as_before(lab, clean)


def test_reference_nginx_dsr_origin_through_sheer_plumbing(lab: Lab, tmp_path: Path,
                                                           clean: dict[str, dict[str, object]]) -> None:
    conf = write(tmp_path, DSR)
    ups = list(lab.topo.upstreams)
    upstream = ["--dsr", "origin", "--vip", str(VIP), "--via", str(RR_INTERNAL)]
    assert net(lab, "proxy", "apply", "-c", conf, "--dsr", "origin").returncode == 0
    try:
        for up in ups:
            res = net(lab, up.name, "apply", "-c", conf, "--role", "upstream", "--host", str(up.address()),
                      *upstream)
            assert res.returncode == 0, res.stderr
        with lab.proxy(DSR, "nginx"):
            mark = lab.mark()
            answers = [lab.run("client", "dig", "+short", "+time=2", "+tries=1", "@192.168.99.10",
                               "www.example.com")
                       .stdout.strip() for _ in range(4)]
            assert all(a.startswith("172.16.0.") for a in answers), answers
            seen = lab.seen(mark)
            assert seen and all(s.src == "192.168.99.1" for s in seen), seen
    finally:
        for up in ups:
            net(lab, up.name, "revert", "-c", conf, "--role", "upstream", "--host", str(up.address()))
        net(lab, "proxy", "revert", "-c", conf)
    assert_as_before(lab, clean)
