"""The lab as a test fixture: run commands in nodes, read counters, see what the upstreams saw."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sheer.lab import build, configs, counters, plumbing, running_proxy, witness
from sheer.lab.errors import LabError
from sheer.lab.procs import run
from sheer.lab.topology import LAB, STATE_DIR, Node, Topology, article, current


def unsupported_reason() -> str | None:
    """Why network namespaces are impossible here, or None. Missing nginx/dnsmasq is a failure, not this."""
    if os.geteuid() != 0:
        return "lab tests need root (ip netns, veth, nft): run pytest as root"
    if shutil.which("ip") is None:
        return "lab tests need `ip` (iproute2)"
    probe = f"{LAB}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], check=False, capture_output=True, text=True)
    subprocess.run(["ip", "netns", "delete", probe], check=False, capture_output=True)
    if made.returncode != 0:
        return f"network namespaces are not available here: {made.stderr.strip()}"
    return None


def sheer_unavailable_reason() -> str | None:
    """Why sheer cannot proxy the article's plain config yet (`-t` refuses it, or one request
    through it fails), or None once it can. Needs the lab up."""
    try:
        with running_proxy.running("sheer", configs.PLAIN) as running:
            res = run("ip", "netns", "exec", f"{LAB}-client", "curl", "-s", "-m", "2",
                      "http://192.168.99.10/", check=False)
            if "You connected from" not in res.stdout:
                lines = [ln for ln in running.log().splitlines() if ln.strip()]
                why = next((ln for ln in lines if "failed" in ln or "rror" in ln), lines[-1] if lines else "")
                return f"sheer runs but does not proxy HTTP yet (curl exit {res.returncode}): {why}"
    except LabError as exc:
        return f"sheer cannot run the article's config yet: {exc}"
    return None


def root_snapshot() -> tuple[str, str]:
    """`ip netns list` and the root namespace's links: what `lab down` must leave as it found."""
    return run("ip", "netns", "list").stdout, run("ip", "-br", "link").stdout


class Lab:
    def __init__(self, topo: Topology | None = None, state_dir: Path = STATE_DIR) -> None:
        self.topo = topo or article()
        self.state_dir = state_dir
        self.baseline = root_snapshot()

    def up(self) -> bool:
        return build.up(self.topo, self.state_dir)

    def down(self) -> None:
        build.down(self.topo, self.state_dir)

    def node(self, name: str) -> Node:
        """A node of the lab, the fleet's included when one is up (sheer.lab.fleet)."""
        try:
            return self.topo.node(name)
        except KeyError:
            return current(self.state_dir).node(name)

    def run(self, node: str, *cmd: str, check: bool = False,
            timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.node(node).netns, *cmd, check=check, timeout=timeout)

    def python(self, node: str, code: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        """Run a Python snippet in a node (raw sockets and the like, where no tool fits)."""
        return self.run(node, "python3", "-c", code, timeout=timeout)

    def counters(self, node: str) -> dict[str, int]:
        return counters.snmp(self.node(node).netns)

    def mark(self) -> dict[str, dict[str, int]]:
        """Where every upstream's witness logs end now; pass to seen() to get only what follows."""
        return {n.name: witness.log_offsets(n, self.state_dir) for n in self.topo.upstreams}

    def seen(self, since: dict[str, dict[str, int]] | None = None,
             node: str | None = None) -> list[witness.Seen]:
        """What the upstreams' witnesses (nginx, dnsmasq) logged, optionally after a mark()."""
        nodes = [self.node(node)] if node else list(self.topo.upstreams)
        since = since or {}
        return [s for n in nodes for s in witness.parse_seen(n, since.get(n.name), self.state_dir)]

    @contextmanager
    def applied(self, method: str, config_text: str, *extra: str) -> Iterator[None]:
        """`sheer net apply` for the method's plumbing (and `revert` after, even on failure);
        `extra`: more options for the proxy's apply (`--fastpath off`)."""
        path = Path(self.state_dir) / f"applied-{method}.conf"
        path.write_text(config_text)
        try:
            plumbing.sheer_apply(method, path, *extra)
            yield
        finally:
            plumbing.sheer_revert(method, path)

    @contextmanager
    def proxy(self, config_text: str,
              kind: running_proxy.Kind = "sheer") -> Iterator[running_proxy.RunningProxy]:
        with running_proxy.running(kind, config_text, self.state_dir) as running:
            yield running


USERS_FILE = STATE_DIR.parent / f"{LAB}-lab.users"


def _live_users(text: str) -> set[str]:
    """Registrations (`pid.serial`) whose process still runs."""
    users = set()
    for word in text.split():
        pid = word.split(".")[0]
        if pid.isdigit() and Path(f"/proc/{pid}").exists():
            users.add(word)
    return users


_registrations = itertools.count()


@contextmanager
def shared_lab(lab: Lab) -> Iterator[Lab]:
    """Use the lab alongside other users (a test session, a benchmark, even nested in one
    process): bring it up if needed, and tear it down afterwards only when no other live
    registration still uses it."""
    import fcntl

    me = f"{os.getpid()}.{next(_registrations)}"
    USERS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(USERS_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        users = _live_users(handle.read()) | {me}
        handle.seek(0)
        handle.truncate()
        handle.write(" ".join(sorted(users)))
    try:
        lab.up()
        yield lab
    finally:
        with open(USERS_FILE, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            users = _live_users(handle.read()) - {me}
            handle.seek(0)
            handle.truncate()
            handle.write(" ".join(sorted(users)))
            if not users:
                lab.down()
