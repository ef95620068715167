"""The fast path under dnsperf load: a peer killed is skipped by the kernel within the health check's
window and used again after `passes`; table rewrites (API changes, a reload) lose no query.
Witnesses: the dead upstream's own kernel counter (Udp.NoPorts: datagrams that hit its closed
port), its dnsmasq's log, dnsperf's count of lost queries, sheer's error log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fastpath_kit import API, INTERVAL, PASSES, TIMEOUT, VIP, WINDOW, config, wait_log

from sheer.lab import witness
from sheer.lab.procs import read_pid, run, signal_and_wait
from sheer.lab.testing import Lab

pytestmark = pytest.mark.lab

MAGLEV = config()
CLIENT = "192.168.99.1"
WRITTEN = re.compile(r"fast path 192\.168\.99\.10:53: (\d+) entries written")


def dnsperf(lab: Lab, seconds: int, rate: int) -> subprocess.Popen[str]:
    queries = Path(lab.state_dir) / "fastpath-queries.txt"
    queries.write_text("www.example.com A\n" * 50)
    return subprocess.Popen(
        ["ip", "netns", "exec", lab.node("client").netns, "dnsperf", "-s", VIP, "-d", str(queries),
         "-l", str(seconds), "-Q", str(rate), "-t", "2", "-c", "32"],   # 32 ports: each upstream gets some
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen[str]) -> tuple[int, int, str]:
    try:
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    sent = int(re.search(r"Queries sent:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    return sent, lost, out


def no_ports(lab: Lab, node: str) -> int:
    return lab.counters(node)["Udp.NoPorts"]


def start_dnsmasq(lab: Lab, name: str) -> float:
    node = lab.node(name)
    run("ip", "netns", "exec", node.netns, *witness.dnsmasq_args(node, lab.state_dir))
    return time.monotonic()


def test_dead_peer_skipped_by_the_kernel_then_back(lab: Lab) -> None:
    rate = 2000
    with lab.applied("dsr-router", MAGLEV), lab.proxy(MAGLEV) as running:
        wait_log(running, "65537 of 65537 filled")
        time.sleep(1.0)
        # long enough for the peer to come back on a loaded machine: the load must still run then
        load = dnsperf(lab, 16, rate)
        restarted = None
        try:
            time.sleep(2)
            node = lab.node("up3")
            pid = read_pid(witness.pid_file(node, "dnsmasq", lab.state_dir))
            assert pid is not None
            signal_and_wait(pid)
            before = no_ports(lab, "up3")
            time.sleep(WINDOW + 0.5)         # the window, and the table's one transaction
            at_window = no_ports(lab, "up3")
            time.sleep(2.5)
            after = no_ports(lab, "up3")
            mark = lab.mark()
            restarted = start_dnsmasq(lab, "up3")
            back_after = None
            while time.monotonic() - restarted < PASSES * (INTERVAL + TIMEOUT) + 5:
                if any(s.src == CLIENT for s in lab.seen(mark, node="up3") if s.protocol == "dns"):
                    back_after = time.monotonic() - restarted
                    break
                time.sleep(0.1)
            sent, lost, out = finish(load)
        finally:
            if restarted is None:
                start_dnsmasq(lab, "up3")
            if load.poll() is None:
                load.kill()
                load.wait()
        log = running.log()
    print(f"\ndnsperf: {sent} sent, {lost} lost; up3 Udp.NoPorts: {at_window - before} in the window, "
          f"{after - at_window} in the 2.5 s after it; back {back_after}s after dnsmasq restarted")
    assert 'peer 172.16.0.13:53 in upstream "dns_upstreams" is unhealthy (up -> down)' in log, log
    assert re.search(r"fast path 192\.168\.99\.10:53: \d+ entries written", log), log
    # after the window only the checker's probes reach the dead port (one per interval): no client datagram
    assert after - at_window <= 2.5 / INTERVAL + 1, (before, at_window, after)
    assert lost <= rate / 2 * (WINDOW + 0.7), out           # up3's share (a third), for the window at most
    assert 'peer 172.16.0.13:53 in upstream "dns_upstreams" is healthy (down -> up)' in log, log
    assert back_after is not None, log


def test_table_rewrites_under_load_lose_nothing(lab: Lab) -> None:
    rate = 3000
    url = f"http://{API}/api/9/stream/upstreams/dns_upstreams/servers/0"
    with lab.applied("dsr-router", MAGLEV), lab.proxy(MAGLEV) as running:
        wait_log(running, "65537 of 65537 filled")
        time.sleep(1.0)
        load = dnsperf(lab, 9, rate)
        try:
            time.sleep(1.5)
            for weight in (3, 1, 5, 1):          # each moves a share of the 65537 slots, in one transaction
                body = f'{{"weight": {weight}}}'
                lab.run("proxy", "curl", "-s", "-X", "PATCH", "-d", body, url, check=True)
                time.sleep(1.0)
            os.kill(running.pid, signal.SIGHUP)  # a reload: the new checker writes the whole table again
            wait_log(running, "reconfiguring")
            sent, lost, out = finish(load)
            deadline = time.monotonic() + 10     # the new checker's first write, late on a loaded machine
            while len(WRITTEN.findall(running.log())) < 6 and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
        log = running.log()
    writes = WRITTEN.findall(log)
    print(f"\ndnsperf: {sent} sent, {lost} lost across {len(writes)} table writes {writes}")
    assert len(writes) >= 6, log          # the first, four changes, the reload's
    assert sent > rate * 5
    assert lost == 0, out
