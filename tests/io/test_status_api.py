"""stub_status, nginx Plus's API and `prometheus;` on a real sheer with two workers: the numbers are
every worker's (shared memory), a PATCH reaches every worker at once and survives a reload,
errors are nginx Plus's JSON, concurrent PATCHes keep a consistent state, and the API answers
while the workers are busy."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sheer_process import Sheer, UdpServer, free_port, wait_for

pytestmark = pytest.mark.io

BACKENDS = ("127.0.0.11", "127.0.0.12")


def request(port: int, method: str = "GET", path: str = "/", body: bytes | None = None,
            timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def api(port: int, path: str, method: str = "GET", body: Any = None,
        raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    status, headers, reply = request(port, method, "/api/" + path, data)
    assert headers["content-type"] == "application/json"
    return status, json.loads(reply)


def config(front: int, back: int, control: int, write: str = "on", extra: str = "") -> str:
    return f"""worker_processes 2;
http {{
    upstream app {{ zone app 64k; server {BACKENDS[0]}:{back}; server {BACKENDS[1]}:{back}; {extra} }}
    server {{ listen 127.0.0.1:{front}; status_zone front; location / {{ proxy_pass http://app; }} }}
    server {{ listen {BACKENDS[0]}:{back}; listen {BACKENDS[1]}:{back};
             location / {{ return 200 "$server_addr $pid\\n"; }} }}
    server {{ listen 127.0.0.1:{control};
             location /api/ {{ api write={write}; }}
             location = /basic_status {{ stub_status; }}
             location = /metrics {{ prometheus; }} }}
}}
"""


@pytest.fixture(name="lb")
def lb_fixture(run_sheer: Callable[..., Sheer]) -> tuple[Sheer, int, int]:
    front, back, control = free_port(), free_port(BACKENDS), free_port()
    sheer = run_sheer(config(front, back, control))
    return sheer, front, control


def spread(front: int, count: int) -> Counter[tuple[str, str]]:
    """`count` requests, each on a new connection (so both workers get some): (backend, worker pid)."""
    seen: Counter[tuple[str, str]] = Counter()
    for _ in range(count):
        status, _, body = request(front)
        assert status == 200, body
        backend, pid = body.decode().split()
        seen[(backend, pid)] += 1
    return seen


def peers(control: int) -> list[dict[str, Any]]:
    status, body = api(control, "9/http/upstreams/app")
    assert status == 200
    return list(body["peers"])


def test_the_numbers_are_every_workers(lb: tuple[Sheer, int, int]) -> None:
    _, front, control = lb
    seen = spread(front, 40)
    workers = {pid for _, pid in seen}
    assert len(workers) == 2, f"both workers should have served (SO_REUSEPORT): {seen}"
    # Each proxied request is two requests to sheer (the front one and the backend's), on two connections.
    calls = []

    def basic_status() -> list[int]:
        calls.append(1)
        status, _, text = request(control, path="/basic_status")
        assert status == 200
        found = re.fullmatch(r"Active connections: (\d+) \nserver accepts handled requests\n (\d+) (\d+) "
                             r"(\d+) \nReading: (\d+) Writing: (\d+) Waiting: (\d+) \n", text.decode())
        assert found is not None, text
        return list(map(int, found.groups()))

    # a worker that answered the last backend request may count it out a moment later on a busy machine
    wait_for(lambda: basic_status()[5] == 1, what="only this request writing")
    active, accepts, handled, requests, reading, writing, waiting = basic_status()
    # 40 front + 40 backend + the stub_status calls
    assert accepts == handled == requests == 80 + len(calls)
    assert writing == 1 and reading == 0 and active == waiting + writing + reading
    by_backend = Counter(backend for backend, _ in seen.elements())
    got = {peer["server"].split(":")[0]: peer for peer in peers(control)}
    for backend in BACKENDS:
        assert got[backend]["requests"] == by_backend[backend]
        assert got[backend]["responses"]["2xx"] == by_backend[backend]
        assert got[backend]["state"] == "up" and got[backend]["active"] == 0
        assert got[backend]["received"] > 0 and got[backend]["sent"] > 0
    _, zone = api(control, "9/http/server_zones/front")
    assert zone["requests"] == 40 and zone["responses"]["2xx"] == 40 and zone["processing"] == 0
    _, requests_now = api(control, "9/http/requests")
    assert requests_now["total"] == 40 + 40 + len(calls) + 2 + 1   # two API calls before this one


def test_versions_paths_and_nginx_plus_errors(lb: tuple[Sheer, int, int]) -> None:
    sheer, _, control = lb
    assert api(control, "") == (200, [1, 2, 3, 4, 5, 6, 7, 8, 9])
    status, root = api(control, "9/")
    assert status == 200 and {"nginx", "connections", "http", "stream"} <= set(root)
    status, nginx = api(control, "9/nginx")
    assert nginx["ppid"] == sheer.pid and nginx["pid"] in sheer.workers() and nginx["generation"] == 0
    assert api(control, "9/nginx?fields=generation,pid")[1].keys() == {"generation", "pid"}
    cases = [
        ("99/nginx", "GET", None, 404, "UnknownVersion"),
        ("9/nothing", "GET", None, 404, "PathNotFound"),
        ("9/http/upstreams/nope", "GET", None, 404, "UpstreamNotFound"),
        ("9/http/upstreams/app/servers/7", "GET", None, 404, "UpstreamServerNotFound"),
        ("9/http/upstreams/app/servers/x", "GET", None, 400, "UpstreamBadServerId"),
        ("9/http/server_zones/nope", "GET", None, 404, "ServerZoneNotFound"),
        ("9/http/upstreams/app/servers/0", "PUT", b"{}", 405, "MethodNotSupported"),
        ("9/http/upstreams/app/servers/0", "PATCH", b"{bad json", 415, "JsonError"),
        ("9/http/upstreams/app/servers/0", "PATCH", b'{"colour": "red"}', 400, "UpstreamConfFormatError"),
        ("9/http/upstreams/app/servers/0", "PATCH", b'{"weight": 0}', 400, "UpstreamBadWeight"),
        ("9/http/upstreams/app/servers/0", "PATCH", b'{"down": "yes"}', 400, "UpstreamConfFormatError"),
        ("9/http/upstreams/app/servers/0", "PATCH", b'[1, 2]', 400, "UpstreamConfFormatError"),
        ("9/connections", "PATCH", b"{}", 405, "MethodNotSupported"),
    ]
    for path, method, body, status, code in cases:
        got_status, error = api(control, path, method, raw=body)
        assert got_status == status and error["error"]["code"] == code, (path, method, error)
        assert error["error"]["status"] == status and error["error"]["text"]
        assert re.fullmatch(r"[0-9a-f]{32}",
                            error["request_id"]) and error["href"].endswith("ngx_http_api_module.html")
    # Nothing above changed anything.
    assert [peer["state"] for peer in peers(control)] == ["up", "up"]
    assert [peer["weight"] for peer in peers(control)] == [1, 1]


def test_read_only_api_refuses_changes(run_sheer: Callable[..., Sheer]) -> None:
    front, back, control = free_port(), free_port(BACKENDS), free_port()
    run_sheer(config(front, back, control, write="off"))
    status, error = api(control, "9/http/upstreams/app/servers/0", "PATCH", {"down": True})
    assert status == 405 and error["error"]["code"] == "MethodDisabled"
    assert [peer["state"] for peer in peers(control)] == ["up", "up"]


def test_drain_down_and_weight_reach_every_worker_at_once(lb: tuple[Sheer, int, int]) -> None:
    _, front, control = lb
    status, conf = api(control, "9/http/upstreams/app/servers/1", "PATCH", {"drain": True})
    assert status == 200 and conf == {"id": 1, "server": f"{BACKENDS[1]}:{conf['server'].split(':')[1]}",
                                      "weight": 1, "max_conns": 0, "max_fails": 1, "fail_timeout": "10s",
                                      "slow_start": "0s", "route": "", "backup": False, "down": False,
                                      "drain": True}
    seen = spread(front, 30)
    assert {backend for backend, _ in seen} == {BACKENDS[0]}, seen
    assert len({pid for _, pid in seen}) == 2, seen                  # both workers obeyed
    assert [peer["state"] for peer in peers(control)] == ["up", "draining"]

    api(control, "9/http/upstreams/app/servers/1", "PATCH", {"drain": False})
    api(control, "9/http/upstreams/app/servers/0", "PATCH", {"down": True})
    seen = spread(front, 30)
    assert {backend for backend, _ in seen} == {BACKENDS[1]}, seen
    assert [peer["state"] for peer in peers(control)] == ["down", "up"]

    api(control, "9/http/upstreams/app/servers/0", "PATCH", {"down": False, "weight": 3})
    seen = spread(front, 40)
    counts = Counter(backend for backend, _ in seen.elements())
    assert counts[BACKENDS[0]] > counts[BACKENDS[1]] > 0, counts     # 3:1 per worker, smooth round robin
    assert api(control, "9/http/upstreams/app/servers/")[1][0]["weight"] == 3


def test_changes_are_kept_across_a_reload(lb: tuple[Sheer, int, int]) -> None:
    sheer, front, control = lb
    spread(front, 10)
    before = peers(control)
    api(control, "9/http/upstreams/app/servers/0", "PATCH", {"down": True})
    old = set(sheer.workers())
    sheer.signal(signal.SIGHUP)
    wait_for(lambda: not (set(sheer.workers()) & old), 10.0, "the old workers to leave")
    assert api(control, "9/nginx")[1]["generation"] == 1
    seen = spread(front, 20)
    assert {backend for backend, _ in seen} == {BACKENDS[1]}, seen
    after = peers(control)
    assert after[0]["state"] == "down"
    # The counters were kept too (a zone survives a reload in nginx Plus).
    assert after[1]["requests"] == before[1]["requests"] + 20


def test_concurrent_patches_from_two_clients_leave_one_consistent_state(lb: tuple[Sheer, int, int]) -> None:
    _, front, control = lb
    failures: list[Any] = []

    def client(server: int, bodies: list[dict[str, Any]]) -> None:
        for body in bodies:
            status, reply = api(control, f"9/http/upstreams/app/servers/{server}", "PATCH", body)
            if status != 200:
                failures.append(reply)

    first = [{"weight": n} for n in range(1, 61)]
    second = [{"down": n % 2 == 0, "weight": 100 - n} for n in range(1, 61)]   # ends with down, weight 40
    threads = [threading.Thread(target=client, args=(0, first)),
               threading.Thread(target=client, args=(1, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    conf = api(control, "9/http/upstreams/app/servers/")[1]
    assert (conf[0]["weight"], conf[0]["down"]) == (60, False)
    assert (conf[1]["weight"], conf[1]["down"]) == (40, True)
    seen = spread(front, 20)            # and every worker's balancer applied the last of each
    assert {backend for backend, _ in seen} == {BACKENDS[0]} and len({pid for _, pid in seen}) == 2


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make deps)")
def test_the_api_answers_while_the_workers_are_saturated(lb: tuple[Sheer, int, int]) -> None:
    """wrk keeps both workers busy (100 connections, 4 s); meanwhile the API keeps answering, and the
    count it gives afterwards is wrk's own (every worker's, none lost)."""
    _, front, control = lb
    before = api(control, "9/http/server_zones/front")[1]["requests"]
    load = subprocess.Popen(["wrk", "-t2", "-c100", "-d4s", f"http://127.0.0.1:{front}/"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    answered = 0
    busy = []
    try:
        time.sleep(0.5)
        while load.poll() is None:
            status, body = api(control, "9/connections")
            assert status == 200
            busy.append(body["active"])
            answered += 1
            time.sleep(0.2)
    finally:
        if load.poll() is None:
            load.kill()
        output = load.communicate(timeout=10)[0]
    found = re.search(r"(\d+) requests in", output)
    assert found is not None, output
    assert answered >= 5 and max(busy) >= 50, (answered, busy)      # the 100 connections were there
    after = api(control, "9/http/server_zones/front")[1]
    assert after["requests"] - before >= int(found.group(1)), (after, output)
    # the requests wrk left in flight end as the workers see its connections go (a busy machine lags)
    wait_for(lambda: api(control, "9/http/server_zones/front")[1]["processing"] == 0, timeout=10,
             what="no request left processing")


def test_prometheus_exposition_matches_the_api(lb: tuple[Sheer, int, int]) -> None:
    _, front, control = lb
    spread(front, 12)
    status, headers, text = request(control, path="/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=")
    families = {family.name: family for family in text_string_to_metric_families(text.decode())}
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in families.values() for sample in family.samples}
    for peer in peers(control):
        labels = (("server", peer["server"]), ("upstream", "app"))
        assert samples[("nginxplus_upstream_server_requests", labels)] == peer["requests"]
        assert samples[("nginxplus_upstream_server_state", labels)] == 1
        assert samples[("nginxplus_upstream_server_responses",
                        (("code", "2xx"), *labels))] == peer["responses"]["2xx"]
    assert samples[("nginxplus_server_zone_requests", (("server_zone", "front"),))] == 12
    assert samples[("nginx_connections_accepted", ())] >= 24
    assert families["nginx_http_requests"].type == "counter"
    assert "sheer_upstream_server_health_transitions" in families


def test_stream_udp_sessions_and_health_checks_in_the_api(run_sheer: Callable[..., Sheer],
                                                          closing: Any) -> None:
    """A UDP stream server with a status_zone and an active check: sessions per zone and peer,
    health checks counted by the checker process, a dead peer seen as unhealthy with its transition."""

    port = free_port(BACKENDS, (socket.SOCK_DGRAM,))
    listen, control = free_port(("127.0.0.1",), (socket.SOCK_DGRAM,)), free_port()
    closing(UdpServer(BACKENDS[0], port, lambda data, peer: None if data == b"nginx health check"
                                  else [b"ok " + data]))
    sheer = run_sheer(f"""worker_processes 2;
stream {{
    upstream dns {{ server {BACKENDS[0]}:{port}; server {BACKENDS[1]}:{port}; }}
    server {{ listen 127.0.0.1:{listen} udp; status_zone dns; proxy_pass dns; proxy_responses 1;
             health_check interval=200ms udp; health_check_timeout 200ms; }}
}}
http {{ server {{ listen 127.0.0.1:{control};
                location /api/ {{ api; }} location = /metrics {{ prometheus; }} }} }}
""")
    peer_path = "9/stream/upstreams/dns"
    wait_for(lambda: api(control, peer_path)[1]["peers"][1]["state"] == "unhealthy", 10.0,
             "the dead peer unhealthy")
    for n in range(10):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(3)
            client.sendto(b"q%d" % n, ("127.0.0.1", listen))
            assert client.recv(100) == b"ok q%d" % n
    wait_for(lambda: api(control, "9/stream/server_zones/dns")[1]["sessions"]["2xx"] == 10, 5.0,
             "10 sessions")
    zone = api(control, "9/stream/server_zones/dns")[1]
    assert zone["connections"] == 10 and zone["processing"] == 0
    assert zone["received"] == 20 and zone["sent"] == 50
    wait_for(lambda: api(control, peer_path)[1]["peers"][0]["health_checks"]["checks"] >= 2, 5.0,
             "checks of both")
    up, dead = api(control, peer_path)[1]["peers"]
    assert up["connections"] == 10 and up["state"] == "up" and up["health_checks"]["last_passed"] is True
    assert dead["connections"] == 0 and dead["health_checks"]["unhealthy"] == 1
    assert dead["health_checks"]["fails"] >= 1 and dead["health_checks"]["last_passed"] is False
    assert dead["downtime"] > 0 and "downstart" in dead
    text = request(control, path="/metrics")[2].decode()
    server = f'server="{BACKENDS[1]}:{port}"'
    assert (f'sheer_upstream_server_health_transitions_total{{protocol="stream",{server},'
            f'to="unhealthy",upstream="dns"}} 1.0') in text
    assert f'nginxplus_stream_upstream_server_state{{{server},upstream="dns"}} 6.0' in text
    sheer.check_running()


def test_dsr_datagrams_counted_per_service_and_peer(run_sheer: Callable[..., Sheer], closing: Any) -> None:
    """Direct server return on loopback (the raw sender writes the client's address as the source, the
    upstream answers the client itself): the user-space path's datagrams reach the API and the
    exposition, per service and per peer, summed over both workers, within the publishing interval."""
    port = free_port(BACKENDS, (socket.SOCK_DGRAM,))
    listen, control = free_port(("127.0.0.1",), (socket.SOCK_DGRAM,)), free_port()
    servers = [closing(UdpServer(host, port, lambda data, peer: [b"dsr " + data])) for host in BACKENDS]
    run_sheer(f"""worker_processes 2;
stream {{
    upstream dns {{ server {BACKENDS[0]}:{port}; server {BACKENDS[1]}:{port}; }}
    server {{ listen 127.0.0.1:{listen} udp; proxy_pass dns; proxy_responses 0;
             proxy_bind $remote_addr:$remote_port transparent; dsr_without_health_check on; }}
}}
http {{ server {{ listen 127.0.0.1:{control};
                location /api/ {{ api; }} location = /metrics {{ prometheus; }} }} }}
""")
    for n in range(40):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(3)
            client.sendto(b"q%02d" % n, ("127.0.0.1", listen))
            data, sender = client.recvfrom(100)
            assert data == b"dsr q%02d" % n and sender[0] in BACKENDS       # answered by the upstream itself
    assert sum(len(s.peers) for s in servers) == 40

    def peers() -> list[dict[str, Any]]:
        return list(api(control, "9/stream/upstreams/dns")[1]["peers"])
    wait_for(lambda: sum(p["connections"] for p in peers()) == 40, 5.0, "40 datagrams counted")
    for peer, server in zip(peers(), servers, strict=True):
        assert peer["connections"] == len(server.peers) and peer["sent"] == 3 * len(server.peers)
        assert (peer["connections"] == 0) == ("selected" not in peer)
    text = request(control, path="/metrics")[2].decode()
    assert f'sheer_dsr_datagrams_total{{service="127.0.0.1:{listen} udp"}} 40.0' in text, text
    assert f'sheer_dsr_bytes_total{{service="127.0.0.1:{listen} udp"}} 120.0' in text
