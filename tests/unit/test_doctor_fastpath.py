"""sheer doctor on the DSR fast path: which path, and why; forwarding, the forward hook, conntrack, the
feeder. Kernel state recorded in the lab after `sheer net apply --dsr router` (tests/unit/data/doctor)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from doctor_recorded import PROXY, need, state

from sheer.doctor.checks.fastpath import fastpath
from sheer.doctor.findings import Finding
from sheer.lab import configs
from sheer.net.plan import Options

ROUTER = replace(PROXY, sysctls={**PROXY.sysctls, "net.ipv4.ip_forward": "1",
                                 "net.ipv4.udp_early_demux": "0"})
LEAST_CONN = configs.DSR.replace("upstream dns_upstreams {", "upstream dns_upstreams {\n        least_conn;")


def check(tmp_path: Path, text: str = configs.DSR, rules: str = "fastpath", feeders: tuple[int, ...] = (42,),
          **facts: str) -> list[Finding]:
    kernel = replace(ROUTER, sysctls={**ROUTER.sysctls, **facts})
    needs = need(tmp_path, text, kernel, Options(dsr="router"))
    return fastpath(needs, state(kernel, rules, feeders=feeders))


def by(findings: list[Finding], name: str) -> Finding:
    return next(f for f in findings if f.check == name)


def test_kernel_path_fed_forwarding_and_notrack(tmp_path: Path) -> None:
    found = check(tmp_path)
    fp = by(found, "fast path")
    assert fp.status == "ok" and "0.0.0.0:53 udp: kernel fast path" in fp.summary, fp
    assert "map dsr_192_168_99_10_53: 4 entries" in fp.evidence
    assert any("pid 42" in e for e in fp.evidence)
    assert by(found, "forward drops").status == "ok"
    assert by(found, "conntrack").status == "ok"
    assert not any(f.check == "ip_forward" for f in found)


def test_nobody_feeding_is_a_warning(tmp_path: Path) -> None:
    fp = by(check(tmp_path, feeders=()), "fast path")
    assert fp.status == "warning" and "no running sheer feeds it" in fp.summary


def test_forwarding_off_is_a_problem_in_origin_nat(tmp_path: Path) -> None:
    # router NAT's own check already says it (one problem, not two); origin NAT forwards only for the
    # fast path
    assert not any(f.check == "ip_forward" for f in check(tmp_path, **{"net.ipv4.ip_forward": "0"}))
    kernel = replace(ROUTER, sysctls={**ROUTER.sysctls, "net.ipv4.ip_forward": "0"})
    found = by(fastpath(need(tmp_path, configs.DSR, kernel, Options(dsr="origin")),
                        state(kernel, "fastpath", feeders=(42,))), "ip_forward")
    assert found.status == "problem" and "sysctl -w net.ipv4.ip_forward=1" in found.fix


def test_forward_hook_drops_are_reported(tmp_path: Path) -> None:
    kernel = replace(ROUTER, sysctls={**ROUTER.sysctls})
    s = state(kernel, "fastpath", feeders=(42,))
    drop = {"chain": {"family": "inet", "table": "filter", "name": "forward", "handle": 1, "type": "filter",
                      "hook": "forward", "prio": 0, "policy": "drop"}}
    needs = need(tmp_path, configs.DSR, kernel, Options(dsr="router"))
    found = fastpath(needs, replace(s, ruleset=(*s.ruleset, drop)))
    f = by(found, "forward drops")
    assert f.status == "warning" and "inet filter forward: policy drop" in f.evidence


def test_not_installed_says_how(tmp_path: Path) -> None:
    fp = by(check(tmp_path, rules="router"), "fast path")
    assert fp.status == "warning" and "not installed" in fp.summary
    assert fp.fix and fp.fix[0].startswith("sheer net apply -c") and "--dsr router" in fp.fix[0]


def test_a_method_the_kernel_cannot_run_is_the_user_space_path(tmp_path: Path) -> None:
    found = check(tmp_path, LEAST_CONN, rules="router")
    fp = by(found, "fast path")
    assert fp.status == "ok" and "user-space path: least_conn" in fp.summary, fp
    assert [f.check for f in found] == ["fast path"]       # nothing forwarded by the kernel to check
