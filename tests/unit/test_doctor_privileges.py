"""doctor: can the workers set IP_TRANSPARENT (root, capabilities, `user` switch)."""

from __future__ import annotations

from pathlib import Path

from doctor_recorded import ROOT, need, state

from sheer.doctor.checks import privileges
from sheer.doctor.state import CAP_NET_ADMIN, CAP_NET_RAW, Privileges
from sheer.lab import configs

NO_NET_CAPS = ROOT.cap_eff & ~(1 << CAP_NET_RAW | 1 << CAP_NET_ADMIN)
SETPRIV_ERROR = ("setsockopt(IP_TRANSPARENT) failed (1: Operation not permitted); IP_TRANSPARENT needs "
                 "CAP_NET_RAW or CAP_NET_ADMIN")


def test_root_is_fine(tmp_path: Path) -> None:
    [f] = privileges(need(tmp_path), state(privileges=ROOT))
    assert f.status == "ok"
    assert "CAP_NET_ADMIN, CAP_NET_RAW" in f.evidence[0]


def test_without_the_capability_is_a_problem_with_the_fix(tmp_path: Path) -> None:
    # as under `setpriv --bounding-set=-net_raw,-net_admin --inh-caps=-all`
    p = Privileges(0, NO_NET_CAPS, NO_NET_CAPS, SETPRIV_ERROR)
    [f] = privileges(need(tmp_path), state(privileges=p))
    assert f.status == "problem"
    assert "cannot set IP_TRANSPARENT" in f.summary
    assert SETPRIV_ERROR in f.evidence
    assert "neither CAP_NET_RAW nor CAP_NET_ADMIN" in f.evidence[0]
    assert f.fix[0].startswith("sudo sheer -c ")


def test_user_switch_needs_cap_net_raw_in_the_bounding_set(tmp_path: Path) -> None:
    conf = configs.TRANSPARENT.replace("user root;", "user nobody nogroup;")
    admin_only = ROOT.cap_eff & ~(1 << CAP_NET_RAW)
    [f] = privileges(need(tmp_path, conf), state(privileges=Privileges(0, admin_only, admin_only, None)))
    assert f.status == "problem" and "keep only CAP_NET_RAW" in f.summary
    [ok] = privileges(need(tmp_path, conf), state(privileges=ROOT))
    assert ok.status == "ok" and "workers run as nobody and keep CAP_NET_RAW" in ok.summary


def test_not_needed_without_transparency(tmp_path: Path) -> None:
    assert privileges(need(tmp_path, configs.PLAIN), state(privileges=ROOT)) == []
