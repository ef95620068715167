"""Health checks in the lab: an upstream's server stops under load, sheer stops sending to it
within interval x fails + health_check_timeout, and sends again after `passes` checks once it
is back. Witnesses: the upstreams' own logs and kernel counters (Udp.NoPorts counts datagrams
that hit the stopped server's closed port), sheer's error log for its state changes."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sheer.lab import configs, witness
from sheer.lab.procs import read_pid, run, signal_and_wait
from sheer.lab.testing import Lab
from sheer.lab.topology import VIP as _VIP

pytestmark = pytest.mark.lab

VIP = str(_VIP)
CLIENT = "192.168.99.1"
DNS_QUERY = (r"\x00\x2a\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"      # header: id 42, one question
             r"\x03\x73\x74\x6c\x04\x75\x6d\x73\x6c\x03\x65\x64\x75\x00"  # stl.umsl.edu
             r"\x00\x01\x00\x01")                                          # A, IN
DNS_MATCH = f"""
    match dns {{
        send {DNS_QUERY};
        expect ~* "health.is.good";
    }}
"""
INTERVAL, FAILS, PASSES, TIMEOUT = 1.0, 1, 2, 0.5
WINDOW = INTERVAL * FAILS + TIMEOUT


HEADER = configs.HEADER + "error_log stderr notice;\n\n"


def servers(port: int) -> str:
    return "".join(f"\n        server 172.16.0.1{n}:{port};" for n in range(1, 5))


DSR_CHECKED = HEADER.replace("worker_processes 1;", "worker_processes 2;") + f"""stream {{
    upstream dns_upstreams {{
        zone dns 64k;{servers(53)}
    }}
{DNS_MATCH}
    server {{
        listen 53 udp;
        proxy_responses 0;
        proxy_timeout 1s;
        proxy_bind $remote_addr:$remote_port transparent;
        proxy_pass dns_upstreams;
        health_check interval=1s fails={FAILS} passes={PASSES} match=dns udp;
        health_check_timeout 500ms;
    }}
}}
"""


@contextmanager
def stopped(lab: Lab, node_name: str, service: str) -> Iterator[list[float]]:
    """Stop one witness daemon of one upstream; restart it when the block ends (or via the list)."""
    node = lab.node(node_name)
    pid = read_pid(witness.pid_file(node, service, lab.state_dir))
    assert pid is not None
    signal_and_wait(pid)
    restarted: list[float] = []
    try:
        yield restarted
    finally:
        if not restarted:
            start(lab, node_name, service)


def start(lab: Lab, node_name: str, service: str) -> float:
    node = lab.node(node_name)
    d = witness.node_dir(node, lab.state_dir)
    netns = ("ip", "netns", "exec", node.netns)
    if service == "dnsmasq":
        run(*netns, *witness.dnsmasq_args(node, lab.state_dir))
    else:
        run(*netns, witness.NGINX, "-e", str(d / "nginx-error.log"), "-p", str(d), "-c",
            str(d / "nginx.conf"))
    return time.monotonic()


def no_ports(lab: Lab, node: str) -> int:
    return lab.counters(node)["Udp.NoPorts"]


def test_dsr_dnsperf_dead_upstream_is_skipped_then_back(lab: Lab) -> None:
    queries = Path(lab.state_dir) / "health-queries.txt"
    queries.write_text("www.example.com A\n" * 50)
    rate = 2000
    with lab.applied("dsr-router", DSR_CHECKED), lab.proxy(DSR_CHECKED) as running:
        time.sleep(1.5)       # first checks done: every peer up
        dnsperf = subprocess.Popen(
            ["ip", "netns", "exec", lab.node("client").netns, "dnsperf", "-s", VIP, "-d", str(queries),
             "-l", "9", "-Q", str(rate), "-t", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        try:
            time.sleep(2)
            with stopped(lab, "up3", "dnsmasq") as restarted:
                stop_at = time.monotonic()
                before = no_ports(lab, "up3")
                time.sleep(WINDOW + 0.2)
                at_window = no_ports(lab, "up3")
                time.sleep(2.5)
                after = no_ports(lab, "up3")
                mark = lab.mark()
                restarted.append(start(lab, "up3", "dnsmasq"))
                back_after = None
                while time.monotonic() - restarted[0] < PASSES * (INTERVAL + TIMEOUT) + 2:
                    if any(s.src == CLIENT for s in lab.seen(mark, node="up3") if s.protocol == "dns"):
                        back_after = time.monotonic() - restarted[0]
                        break
                    time.sleep(0.1)
            out, _ = dnsperf.communicate(timeout=30)
        finally:
            if dnsperf.poll() is None:
                dnsperf.kill()
                dnsperf.wait()
        log = running.log()
    sent = int(re.search(r"Queries sent:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    timeouts = re.findall(r"\[Timeout\].*", out)
    print(f"\ndnsperf: {sent} sent, {lost} lost while up3's dnsmasq was down "
          f"(window {WINDOW}s at {rate} q/s over 4 upstreams); first lost: {timeouts[:5]}")
    print(f"up3 Udp.NoPorts: {at_window - before} in the window, {after - at_window} in the "
          f"{after - at_window and 2.5}s after it (health probes only)")
    print(f"up3 got client queries again {back_after}s after dnsmasq restarted")
    assert re.search(r'peer 172\.16\.0\.13:53 in upstream "dns_upstreams" is unhealthy \(up -> down\)',
                     log), log
    # after the window only the checker's probes reach the dead port (one per interval), no client query
    assert after - at_window <= 2.5 / INTERVAL + 1, (before, at_window, after)
    # what was lost is what the window allowed (a quarter of the queries for at most WINDOW)
    assert lost <= rate / 4 * (WINDOW + 0.5), out
    assert re.search(r'peer 172\.16\.0\.13:53 in upstream "dns_upstreams" is healthy \(down -> up\): '
                     rf"passed \({PASSES} passed checks in a row\)", log), log
    assert back_after is not None, log
    assert stop_at < restarted[0]


HTTP_CHECKED = HEADER + f"""http {{
    upstream http_upstreams {{
        zone http 64k;{servers(80)}
    }}
    server {{
        listen 80;
        location / {{
            proxy_pass http://http_upstreams;
            proxy_connect_timeout 1s;
            proxy_read_timeout 1s;
            health_check interval=1s fails={FAILS} passes={PASSES};
        }}
    }}
}}
"""
HTTP_PASSIVE = HTTP_CHECKED.replace(f"\n            health_check interval=1s fails={FAILS} passes={PASSES};",
                                    "")


def curl(lab: Lab, count: int) -> list[str]:
    bodies = [lab.run("client", "curl", "-s", "-m", "3", f"http://{VIP}/").stdout for _ in range(count)]
    return [body.split(".")[0].removeprefix("Hello from ") for body in bodies]


def connects_to(log: str, address: str) -> int:
    return len(re.findall(rf'connect\(\) failed .*upstream: "http://{re.escape(address)}', log))


def test_http_passive_max_fails_then_active_check(lab: Lab) -> None:
    # passive (nginx's max_fails=1 fail_timeout=10s): one failed connect, retried on the next peer,
    # then the peer is skipped; no client sees an error
    with lab.proxy(HTTP_PASSIVE) as running, stopped(lab, "up2", "nginx"):
        answers = curl(lab, 12)
        log = running.log()
    assert "" not in answers and "up2" not in answers, answers
    assert connects_to(log, "172.16.0.12:80/") == 1, log
    assert "upstream server temporarily disabled" in log, log
    # active: after the window no request even tries it; back after `passes` checks
    with lab.proxy(HTTP_CHECKED) as running:
        time.sleep(1.5)
        with stopped(lab, "up2", "nginx") as restarted:
            time.sleep(WINDOW + 0.3)
            answers = curl(lab, 12)
            log = running.log()
            restarted.append(start(lab, "up2", "nginx"))
            time.sleep(PASSES * INTERVAL + 1.0)
            back = curl(lab, 8)
        log_after = running.log()
    assert "" not in answers and "up2" not in answers, answers
    assert connects_to(log, "172.16.0.12:80/") == 0, log
    assert 'peer 172.16.0.12:80 in upstream "http_upstreams" is unhealthy (up -> down)' in log, log
    assert 'peer 172.16.0.12:80 in upstream "http_upstreams" is healthy (down -> up)' in log_after, log_after
    assert "up2" in back, back


TCP_CHECKED = HEADER + f"""stream {{
    upstream witnesses {{{servers(8000)}
    }}
    server {{
        listen 8000;
        proxy_connect_timeout 1s;
        proxy_pass witnesses;
        health_check interval=1s fails={FAILS} passes={PASSES};
        health_check_timeout 500ms;
    }}
}}
"""


def test_tcp_active_check(lab: Lab) -> None:
    def connect(count: int) -> list[str]:
        outs = [lab.run("client", "curl", "-s", "-m", "3", f"telnet://{VIP}:8000", timeout=5).stdout
                for _ in range(count)]
        return [m.group(1) if (m := re.search(r" to ([\d.]+):", out)) else "" for out in outs]

    with lab.proxy(TCP_CHECKED) as running:
        time.sleep(1.5)
        with stopped(lab, "up2", "nginx") as restarted:
            time.sleep(WINDOW + 0.3)
            answers = connect(8)
            log = running.log()
            restarted.append(start(lab, "up2", "nginx"))
            time.sleep(PASSES * INTERVAL + 1.0)
            back = connect(8)
        log_after = running.log()
    assert "" not in answers and "172.16.0.12" not in answers, answers
    assert "while connecting to upstream" not in log, log   # no client connection tried it
    assert ('peer 172.16.0.12:8000 in upstream "witnesses" is unhealthy (up -> down): connect() failed (111'
            in log)
    assert 'peer 172.16.0.12:8000 in upstream "witnesses" is healthy (down -> up)' in log_after, log_after
    assert "172.16.0.12" in back, back
