"""Names resolved at load and at every reload through the system's resolver (getaddrinfo), as nginx
does. sheer runs in a private mount namespace whose /etc/hosts is the test's file and whose
nsswitch.conf says `hosts: files`: the names are the test's, and no DNS server is ever asked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sheer_process import Sheer, free_port, wait_for

from sheer.config.names import HostNotFound

pytestmark = pytest.mark.io

HOSTS = ("127.0.0.21", "127.0.0.22", "127.0.0.23")


def _wrapper() -> list[str]:
    """`unshare` into a private mount namespace (a user namespace too when not root)."""
    base = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        base[1:1] = ["--user", "--map-root-user"]
    probe = subprocess.run([*base, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here ({probe.stderr.decode().strip()})")
    return base


class HostsFile:
    """The /etc/hosts sheer sees; rewritten in place (same inode) so the bind mount shows changes."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "hosts"
        self.nsswitch = directory / "nsswitch.conf"
        self.nsswitch.write_text("hosts: files\n")
        self.names: dict[str, tuple[str, ...]] = {}
        self.write()

    def set(self, name: str, *addresses: str) -> None:
        if addresses:
            self.names[name] = addresses
        else:
            self.names.pop(name, None)
        self.write()

    def write(self) -> None:
        lines = ["127.0.0.1 localhost"] + [f"{a} {name}" for name, addresses in self.names.items()
                                           for a in addresses]
        with open(self.path, "r+" if self.path.exists() else "w") as handle:
            handle.seek(0)
            handle.truncate()
            handle.write("\n".join(lines) + "\n")

    def lookup(self, host: str) -> tuple[str, ...]:
        """The same answers for the test process (it must not ask a real resolver either)."""
        if host == "localhost":
            return ("127.0.0.1",)
        if host not in self.names:
            raise HostNotFound(host)
        return self.names[host]

    def command(self, *argv: str) -> list[str]:
        script = ('mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/nsswitch.conf && shift 2 '
                  '&& exec "$@"')
        return [*_wrapper(), "sh", "-c", script, "sh", str(self.path), str(self.nsswitch), *argv]


class NamedSheer(Sheer):
    def __init__(self, tmp: Path, text: str, hosts: HostsFile) -> None:
        super().__init__(tmp, text, lookup=hosts.lookup)
        self.hosts = hosts

    def command(self, *args: str) -> list[str]:
        return self.hosts.command(*self.argv(*args))


@pytest.fixture(name="named")
def named_fixture(tmp_path: Path) -> Iterator[Callable[..., NamedSheer]]:
    hosts = HostsFile(tmp_path)
    started: list[NamedSheer] = []

    def run(text: str) -> NamedSheer:
        process = NamedSheer(tmp_path, text, hosts)
        started.append(process)
        return process

    run.hosts = hosts  # type: ignore[attr-defined]
    try:
        yield run
    finally:
        for process in started:
            process.stop()


def get(port: int, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return str(response.read().decode())


def conf(front: int, back: int, api: int) -> str:
    return f"""
worker_processes 2;
http {{
    upstream app {{ server app.test:{back} weight=2; }}
    server {{ listen front.test:{front}; location / {{ proxy_pass http://app; }} }}
    server {{ {" ".join(f"listen {h}:{back};" for h in HOSTS)} location / {{ return 200 "$server_addr"; }} }}
    server {{ listen 127.0.0.1:{api}; location /api/ {{ api; }} }}
}}
"""


def peers(api: int) -> list[dict[str, Any]]:
    return list(json.loads(get(api, "/api/9/http/upstreams/app"))["peers"])


def test_names_resolve_at_load_into_one_peer_per_address(named: Any) -> None:
    named.hosts.set("app.test", "127.0.0.21", "127.0.0.22")
    named.hosts.set("front.test", "127.0.0.1")
    front, back, api = free_port(), free_port(HOSTS), free_port()
    sheer = named(conf(front, back, api)).start()
    found = peers(api)
    assert [(p["server"], p["name"], p["weight"]) for p in found] == [
        (f"127.0.0.21:{back}", f"app.test:{back}", 2), (f"127.0.0.22:{back}", f"app.test:{back}", 2)]
    assert {get(front) for _ in range(20)} == {"127.0.0.21", "127.0.0.22"}
    assert len(sheer.workers()) == 2          # resolved at load: no resolver task, no helper process


def test_a_reload_resolves_again(named: Any) -> None:
    named.hosts.set("app.test", "127.0.0.21", "127.0.0.22")
    named.hosts.set("front.test", "127.0.0.1")
    front, back, api = free_port(), free_port(HOSTS), free_port()
    sheer = named(conf(front, back, api)).start()
    named.hosts.set("app.test", "127.0.0.23")
    old = set(sheer.workers())
    sheer.signal(signal.SIGHUP)
    wait_for(lambda: not old & set(sheer.workers()) and len(sheer.workers()) == 2, 10.0, "the new generation")
    assert [p["server"] for p in peers(api)] == [f"127.0.0.23:{back}"]
    assert {get(front) for _ in range(5)} == {"127.0.0.23"}


def test_a_name_that_vanishes_at_reload_is_a_refused_reload(named: Any) -> None:
    named.hosts.set("app.test", "127.0.0.21", "127.0.0.22")
    named.hosts.set("front.test", "127.0.0.1")
    front, back, api = free_port(), free_port(HOSTS), free_port()
    sheer = named(conf(front, back, api)).start()
    workers = set(sheer.workers())
    named.hosts.set("app.test")
    sheer.signal(signal.SIGHUP)
    sheer.wait_log(f'{sheer.conf}:5: host not found in upstream "app.test:{back}"; '
                   "the new configuration is refused, the old one keeps serving")
    assert set(sheer.workers()) == workers                  # the old workers keep serving
    assert {get(front) for _ in range(20)} == {"127.0.0.21", "127.0.0.22"}


def test_sheer_t_says_host_not_found_at_file_line(named: Any, tmp_path: Path) -> None:
    named.hosts.set("front.test", "127.0.0.1")
    front, back, api = free_port(), free_port(HOSTS), free_port()
    sheer = named(conf(front, back, api))
    result = subprocess.run(named.hosts.command(*sheer.argv("-t")), capture_output=True, text=True,
                            check=False, timeout=30)
    assert result.returncode == 1
    assert f'sheer: [emerg] {sheer.conf}:5: host not found in upstream "app.test:{back}"' in result.stderr
    assert f"configuration file {sheer.conf} test failed" in result.stderr
