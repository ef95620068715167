"""A proxy under test in the lab's proxy namespace: sheer itself, or Debian's nginx as the reference."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Literal

from sheer.lab import witness
from sheer.lab.errors import LabError
from sheer.lab.inspect import listeners
from sheer.lab.procs import alive, signal_and_wait, wait_for
from sheer.lab.topology import STATE_DIR, article

Kind = Literal["sheer", "nginx"]
_runs = count(1)


class ProxyUnavailable(LabError):
    """The proxy cannot run this config (yet): `-t` refused it. The message is its own words."""


@dataclass
class RunningProxy:
    kind: Kind
    config: Path
    prefix: Path
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        path = self.prefix / "output.log"
        return path.read_text(errors="replace") if path.exists() else ""


def config_listeners(config_text: str) -> set[tuple[str, int]]:
    """The (proto, port) pairs a config listens on, to know when the proxy is ready."""
    found = set()
    pattern = r"^\s*listen\s+(?:[\d.]+:|\[[\da-fA-F:]*\]:)?(\d+)([^;]*);"
    for m in re.finditer(pattern, config_text, re.MULTILINE):
        found.add(("udp" if re.search(r"\budp\b", m.group(2)) else "tcp", int(m.group(1))))
    return found


def _nginx_text(config_text: str, prefix: Path) -> str:
    temp = "".join(
        f"\n    {kind}_temp_path {prefix}/tmp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = re.sub(r"^\s*user\s+\S+;\s*$", "", config_text, flags=re.MULTILINE)
    # sheer-only directives the reference nginx does not know (nginx OSS has no active checks)
    text = re.sub(r"^\s*dsr_without_health_check\s+\S+;\s*$", "", text, flags=re.MULTILINE)
    text = re.sub(r"^http\s*\{", "http {" + temp, text, count=1, flags=re.MULTILINE)
    return f"load_module {witness.STREAM_MODULE};\nuser root;\ndaemon off;\npid {prefix}/nginx.pid;\n{text}"


def _command(kind: Kind, config: Path, prefix: Path, test: bool) -> list[str]:
    if kind == "sheer":
        return [sys.executable, "-m", "sheer", *(["-t"] if test else []), "-c", str(config), "-p",
                str(prefix)]
    return [witness.NGINX, *(["-t"] if test else []), "-e", str(prefix / "error.log"), "-p", str(prefix),
            "-c", str(config)]


def check(kind: Kind, config_text: str, state_dir: Path = STATE_DIR) -> None:
    """Raise ProxyUnavailable with the proxy's own message if it refuses the config."""
    prefix = state_dir / "proxy-check"
    config = _write(kind, config_text, prefix)
    proc = subprocess.run(
        ["ip", "netns", "exec", article().node("proxy").netns, *_command(kind, config, prefix, test=True)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        # the first line is the reason ("... is not implemented yet"), the last one only "test failed"
        raise ProxyUnavailable(lines[0] if lines else f"{kind} -t exited {proc.returncode}")


def _write(kind: Kind, config_text: str, prefix: Path) -> Path:
    (prefix / "tmp").mkdir(parents=True, exist_ok=True)
    config = prefix / ("nginx.conf" if kind == "nginx" else "sheer.conf")
    config.write_text(_nginx_text(config_text, prefix) if kind == "nginx" else config_text)
    return config


@contextmanager
def running(kind: Kind, config_text: str, state_dir: Path = STATE_DIR,
            ready_timeout: float = 10.0) -> Iterator[RunningProxy]:
    """Run the proxy in the proxy namespace, in the foreground, until the block ends; stop it by PID."""
    check(kind, config_text, state_dir)
    prefix = state_dir / f"proxy-{next(_runs)}"
    config = _write(kind, config_text, prefix)
    netns = article().node("proxy").netns
    with (prefix / "output.log").open("wb") as out:
        process = subprocess.Popen(
            ["ip", "netns", "exec", netns, *_command(kind, config, prefix, test=False)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (prefix / "proxy.pid").write_text(f"{process.pid}\n")
    proxy = RunningProxy(kind, config, prefix, process)
    try:
        wanted = config_listeners(config_text)

        def ready() -> bool:
            if process.poll() is not None:
                raise LabError(f"{kind} exited with {process.returncode}: {proxy.log()[-500:]}")
            return wanted <= listeners(netns)

        wait_for(ready, ready_timeout, f"{kind} to listen on {sorted(wanted)} in {netns}")
        yield proxy
    finally:
        if alive(process.pid):
            signal_and_wait(process.pid)
        process.wait(timeout=5)
