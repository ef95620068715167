"""Names in the lab, answered by dnsmasq inside the namespaces (never an outside resolver).

What the io tests cannot show: a real DNS implementation (dnsmasq, not the test's own server)
answering sheer's run-time resolver over the lab's network, the system resolver itself
(getaddrinfo -> resolv.conf -> dnsmasq) resolving a name at load in the proxy's namespace, and
real clients whose requests the upstreams' own nginx witnesses saw arrive."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sheer.lab import configs, plumbing
from sheer.lab.procs import alive, read_pid, run, signal_and_wait
from sheer.lab.testing import Lab
from sheer.lab.topology import LAB

pytestmark = pytest.mark.lab

HEADER = configs.HEADER.replace("worker_processes 1;", "worker_processes 2;") + "error_log stderr notice;\n\n"
VIP = "192.168.99.10"


def curl(lab: Lab, path: str = "/") -> str:
    result = lab.run("client", "curl", "-s", "-m", "5", f"http://{VIP}{path}")
    assert result.returncode == 0, result.stderr
    return result.stdout


def seen_by(lab: Lab, mark: dict[str, dict[str, int]]) -> set[str]:
    return {seen.node for seen in lab.seen(mark) if seen.protocol == "http"}


@contextmanager
def resolv_conf(lab: Lab, nameserver: str) -> Iterator[None]:
    """The proxy namespace's /etc/resolv.conf (`ip netns exec` binds /etc/netns/NAME/ over /etc)."""
    directory = Path("/etc/netns") / lab.node("proxy").netns
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "resolv.conf").write_text(f"nameserver {nameserver}\noptions timeout:1 attempts:1\n")
    try:
        yield
    finally:
        (directory / "resolv.conf").unlink(missing_ok=True)
        directory.rmdir()
        with contextlib.suppress(OSError):
            directory.parent.rmdir()              # /etc/netns, when nothing else uses it


class Dnsmasq:
    """A dnsmasq of the test in an upstream's namespace, on port 5353: names from a hosts file it
    re-reads on SIGHUP, answered with a TTL of 1s."""

    def __init__(self, lab: Lab, node: str) -> None:
        self.lab = lab
        self.address = str(lab.node(node).address())
        self.dir = lab.state_dir / f"{LAB}-test-dnsmasq"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hosts = self.dir / "hosts"
        self.pid_file = self.dir / "dnsmasq.pid"
        self.log = self.dir / "dnsmasq.log"
        self.hosts.write_text("")
        self.log.write_text("")
        lab.run(node, "/usr/sbin/dnsmasq", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                "--bind-interfaces",
                f"--listen-address={self.address}", "--port=5353", "--user=root",
                f"--addn-hosts={self.hosts}",
                "--local-ttl=1", "--log-queries", f"--log-facility={self.log}", f"--pid-file={self.pid_file}",
                check=True)

    def set(self, name: str, *addresses: str) -> None:
        self.hosts.write_text("".join(f"{address} {name}\n" for address in addresses))
        pid = read_pid(self.pid_file)
        assert pid is not None
        run("kill", "-HUP", str(pid))

    def stop(self) -> None:
        pid = read_pid(self.pid_file)
        if pid is not None and alive(pid):
            signal_and_wait(pid)


def test_a_name_at_load_goes_through_the_system_resolver_to_dnsmasq(lab: Lab, sheer_ready: None) -> None:
    """getaddrinfo in the proxy's namespace asks up1's dnsmasq for www.example.com (up1's address)."""
    config = HEADER + """http {
    upstream app { server www.example.com:80; }
    server {
        listen 80;
        location / { proxy_pass http://app; }
    }
}
"""
    mark = lab.mark()
    with resolv_conf(lab, "172.16.0.11"), lab.proxy(config):
        assert "You connected from 172.16.0.1" in curl(lab)
    assert seen_by(lab, mark) == {"up1"}
    asked = [s for s in lab.seen(mark, "up1") if s.protocol == "dns"]
    assert asked and all(s.src == "172.16.0.1" for s in asked)       # the proxy asked, at load


def test_resolve_follows_dnsmasq_with_no_request_lost(lab: Lab, sheer_ready: None) -> None:
    dnsmasq = Dnsmasq(lab, "up4")
    try:
        dnsmasq.set("app.lab", "172.16.0.11", "172.16.0.12")
        config = HEADER + f"""http {{
    resolver {dnsmasq.address}:5353 valid=1s ipv6=off;
    resolver_timeout 1s;
    upstream app {{ zone app 64k; server app.lab:80 resolve; }}
    server {{
        listen 80;
        location / {{ proxy_pass http://app; }}
    }}
}}
"""
        with lab.proxy(config) as running:
            deadline = time.monotonic() + 10
            while "app.lab" not in running.log() and time.monotonic() < deadline:
                time.sleep(0.1)
            mark = lab.mark()
            for _ in range(20):
                assert "You connected from" in curl(lab)
            assert seen_by(lab, mark) == {"up1", "up2"}          # both records, both peers
            assert "query[A] app.lab from 172.16.0.1" in dnsmasq.log.read_text()

            dnsmasq.set("app.lab", "172.16.0.13")
            mark = lab.mark()
            deadline = time.monotonic() + 8
            while "up3" not in seen_by(lab, mark):
                assert time.monotonic() < deadline, running.log()[-2000:]
                assert "You connected from" in curl(lab)           # every request answered meanwhile
            mark = lab.mark()
            for _ in range(10):
                curl(lab)
            assert seen_by(lab, mark) == {"up3"}

            dnsmasq.stop()                                         # the resolver goes away
            deadline = time.monotonic() + 8
            while "could not be resolved" not in running.log():
                assert time.monotonic() < deadline, running.log()[-2000:]
                time.sleep(0.2)
            mark = lab.mark()
            for _ in range(5):
                curl(lab)
            assert seen_by(lab, mark) == {"up3"}                   # the old peer is kept
            assert 'upstream "app" keeps its 1 peer(s)' in running.log()
    finally:
        dnsmasq.stop()


def test_dsr_follows_a_name_and_says_when_the_plumbing_must_be_applied_again(lab: Lab,
                                                                             sheer_ready: None) -> None:
    """Router NAT rewrites the replies of the upstreams it knows: a new address needs `sheer net
    apply` again, and the running sheer says so. The upstreams' dnsmasq answer with their own
    address: the answer tells which upstream the DSR datagram reached."""
    dnsmasq = Dnsmasq(lab, "up4")
    try:
        dnsmasq.set("app.lab", "172.16.0.11", "172.16.0.12")
        config = configs.HEADER + f"""stream {{
    resolver {dnsmasq.address}:5353 valid=1s ipv6=off;
    resolver_timeout 1s;
    upstream dns_upstreams {{
        zone dns 64k;
        hash $remote_addr$remote_port maglev;
        server app.lab:53 resolve;
    }}
    server {{
        listen 53 udp;
        proxy_responses 0;
        proxy_timeout 1s;
        proxy_bind $remote_addr:$remote_port transparent;
        dsr_without_health_check on;
        proxy_pass dns_upstreams;
    }}
}}
error_log stderr notice;
"""
        with lab.applied("dsr-router", config), lab.proxy(config) as running:
            deadline = time.monotonic() + 10
            while 'name "app.lab"' not in running.log():
                assert time.monotonic() < deadline, running.log()
                time.sleep(0.1)
            answers = {dig_answer(lab) for _ in range(12)}
            assert answers == {"172.16.0.11", "172.16.0.12"}, answers       # Maglev over both peers

            assert "sheer net apply" not in running.log()                  # a first answer: as applied
            dnsmasq.set("app.lab", "172.16.0.13")
            deadline = time.monotonic() + 8
            while "run \"sheer net apply" not in running.log():
                assert time.monotonic() < deadline, running.log()[-2000:]
                time.sleep(0.2)
            # The datagrams reach 172.16.0.13 now, but its replies are not rewritten to the VIP yet:
            # the client drops them (dig: no answer).
            assert dig_answer(lab) is None
            plumbing.sheer_apply("dsr-router", running.config)            # as the log says
            answers = [dig_answer(lab) for _ in range(6)]
            assert set(answers) == {"172.16.0.13"}, answers
    finally:
        dnsmasq.stop()


def dig_answer(lab: Lab) -> str | None:
    output = lab.run("client", "dig", "+time=2", "+tries=1", f"@{VIP}", "www.example.com").stdout
    match = re.search(r"^www\.example\.com\.\s+\d+\s+IN\s+A\s+(\S+)$", output, re.MULTILINE)
    return match.group(1) if match else None
