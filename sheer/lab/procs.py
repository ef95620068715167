"""Commands and processes of the lab: run `ip`/`nft` and end processes by PID, never by name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sheer.lab.errors import LabError


def run(*cmd: str, check: bool = True, input: str | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, input=input, timeout=timeout)
    except FileNotFoundError as exc:
        raise LabError(f"{cmd[0]} not found: install it (iproute2, nftables, nginx-light, dnsmasq-base)") \
            from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise LabError(f"`{' '.join(cmd)}` failed ({proc.returncode}): {detail}")
    return proc


def netns_exec(netns: str, *cmd: str, check: bool = True,
               timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return run("ip", "netns", "exec", netns, *cmd, check=check, timeout=timeout)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def signal_and_wait(pid: int, timeout: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; returns once the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not alive(pid):
                return
            time.sleep(0.02)
    raise LabError(f"process {pid} ({cmdline(pid)}) survived SIGKILL")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


def netns_list() -> set[str]:
    out = run("ip", "-j", "netns", "list").stdout.strip()
    return {entry["name"] for entry in json.loads(out)} if out else set()


def netns_pids(netns: str) -> list[int]:
    proc = run("ip", "netns", "pids", netns, check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]
