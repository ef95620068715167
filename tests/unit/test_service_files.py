"""The systemd unit, its root-master drop-in and the logrotate snippet in dist/: what they say, and
that systemd's and logrotate's own checkers accept them without a warning."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sheer.cli.main import VERBS, _verbs, parser

DIST = Path(__file__).resolve().parents[2] / "dist"
UNIT = DIST / "systemd" / "sheer.service"
DROP_IN = DIST / "systemd" / "root-master.conf"
LOGROTATE = DIST / "logrotate" / "sheer"


def service_section(*texts: str) -> dict[str, str]:
    """[Service] as systemd merges it: later files override, an empty value resets."""
    merged: dict[str, str] = {}
    for text in texts:
        parsed = configparser.ConfigParser(interpolation=None, strict=False)
        parsed.optionxform = str  # type: ignore[assignment,method-assign]
        parsed.read_string(text)
        merged.update(parsed["Service"])
    return {key: value for key, value in merged.items() if value}


def test_the_unit_runs_sheer_unprivileged_with_only_the_capabilities_it_needs() -> None:
    service = service_section(UNIT.read_text())
    caps = {"CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"}
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["User"] == "sheer"
    assert set(service["AmbientCapabilities"].split()) == caps
    assert set(service["CapabilityBoundingSet"].split()) == caps
    assert service["NoNewPrivileges"] == "yes"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    # The stop drains: QUIT goes to the master alone, which passes it on; SIGKILL only after the timeout.
    assert service["KillSignal"] == "SIGQUIT" and service["KillMode"] == "mixed"
    assert "-c /etc/sheer/sheer.conf" in service["ExecStart"]
    assert " -t " in service["ExecStartPre"]


def test_the_root_master_drop_in_resets_the_user_and_allows_switching_users() -> None:
    service = service_section(UNIT.read_text(), DROP_IN.read_text())
    assert "User" not in service and "AmbientCapabilities" not in service
    assert {"CAP_SETUID", "CAP_SETGID", "CAP_NET_RAW"} <= set(service["CapabilityBoundingSet"].split())


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("drop_in", [False, True], ids=["unit", "root-master"])
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path, drop_in: bool) -> None:
    sheer = shutil.which("sheer") or str(Path(os.sys.executable).with_name("sheer"))
    unit = tmp_path / "sheer.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/sheer", sheer))
    if drop_in:
        (tmp_path / "sheer.service.d").mkdir()
        (tmp_path / "sheer.service.d" / "root-master.conf").write_text(DROP_IN.read_text())
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"}
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_systemd_analyze_verify_would_see_a_mistake(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key is reported."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "sheer.service"
    unit.write_text(UNIT.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                          env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"}, timeout=60, check=False)
    assert "NoNewPrivilege" in done.stderr


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate is not installed")
def test_logrotate_accepts_the_snippet_and_signals_only_the_master(tmp_path: Path) -> None:
    state = tmp_path / "state"
    snippet = tmp_path / "sheer"   # the `sheer` user of the unit does not exist on this machine
    snippet.write_text(LOGROTATE.read_text().replace("create 0640 sheer adm", "create 0640 root adm"))
    done = subprocess.run(["logrotate", "-d", "-s", str(state), str(snippet)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr.lower(), done.stderr
    assert "--kill-who=main --signal=USR1" in LOGROTATE.read_text()


def test_help_names_every_verb() -> None:
    text = parser().format_help()
    assert set(VERBS) == set(_verbs())
    for verb in _verbs():
        assert f"sheer {verb} " in text
