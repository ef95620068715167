"""`server NAME resolve` with a `resolver`: a real sheer master asking a tiny DNS server of the
test on loopback (tests/io/dnsserver.py; no outside resolver is ever asked). The upstreams are
listeners of the same sheer answering with their own address: witnesses of where each request
went, alongside the status API and the error log."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dnsserver import DnsServer, garbage, oversized, wrong_id, wrong_question
from sheer_process import Sheer, TcpEcho, free_port, wait_for

pytestmark = pytest.mark.io

HOSTS = ("127.0.0.21", "127.0.0.22", "127.0.0.23")


@pytest.fixture(name="dns")
def dns_fixture() -> Iterator[DnsServer]:
    server = DnsServer("127.0.0.53", ttl=1)
    try:
        yield server
    finally:
        server.close()


def get(port: int, path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def config(dns: DnsServer, front: int, back: int, api: int, *, resolver: str = "valid=1s",
           workers: int = 2, extra: str = "") -> str:
    return f"""
worker_processes {workers};
http {{
    resolver {dns.address} {resolver} ipv6=off;
    resolver_timeout 1s;
    upstream app {{
        zone app 64k;
        server app.test:{back} resolve;
    }}
    server {{ listen 127.0.0.1:{front}; location / {{ proxy_pass http://app; {extra} }} }}
    server {{
        {" ".join(f"listen {host}:{back};" for host in HOSTS)}
        location / {{ return 200 "$server_addr"; }}
    }}
    server {{ listen 127.0.0.1:{api}; location /api/ {{ api write=on; }} }}
}}
"""


class Setup:
    def __init__(self, run_sheer: Callable[..., Sheer], dns: DnsServer, **kw: Any) -> None:
        self.dns = dns
        self.front, self.back, self.api = (free_port(), free_port((*HOSTS, "127.0.0.24")), free_port())
        self.sheer = run_sheer(config(dns, self.front, self.back, self.api, **kw))

    def peers(self) -> list[dict[str, Any]]:
        status, body = get(self.api, "/api/9/http/upstreams/app")
        assert status == 200, body
        return list(json.loads(body)["peers"])

    def servers(self) -> set[str]:
        return {peer["server"] for peer in self.peers()}

    def at(self, *hosts: str) -> set[str]:
        return {f"{host}:{self.back}" for host in hosts}

    def wait_peers(self, *hosts: str, timeout: float = 5.0) -> None:
        wait_for(lambda: self.servers() == self.at(*hosts), timeout, f"peers {hosts}")

    def answers(self, count: int) -> list[str]:
        out = []
        for _ in range(count):
            status, body = get(self.front)
            assert status == 200, body
            out.append(body)
        return out


def test_a_name_with_two_records_gives_two_peers_in_every_worker(run_sheer: Callable[..., Sheer],
                                                                 dns: DnsServer) -> None:
    dns.set("app.test", "127.0.0.21", "127.0.0.22")
    setup = Setup(run_sheer, dns)
    setup.wait_peers("127.0.0.21", "127.0.0.22")
    peers = setup.peers()
    assert {peer["name"] for peer in peers} == {f"app.test:{setup.back}"}
    assert {peer["state"] for peer in peers} == {"up"}
    seen = setup.answers(40)
    assert set(seen) == {"127.0.0.21", "127.0.0.22"}       # both peers get traffic, from both workers
    assert sum(peer["requests"] for peer in setup.peers()) == 40
    assert dns.questions("app.test") >= 1
    assert all(kind == "A" for name, kind, _ in dns.asked if name == "app.test")    # ipv6=off
    setup.sheer.wait_log('name "app.test" of upstream "app" was resolved to 127.0.0.2')
    resolved = 'name "app.test" of upstream "app" was resolved to '
    line = setup.sheer.error_log().split(resolved)[1].splitlines()[0]
    assert f"added 127.0.0.21:{setup.back}" in line and f"added 127.0.0.22:{setup.back}" in line


def test_a_changed_record_moves_traffic_within_the_ttl_with_no_request_lost(run_sheer: Callable[..., Sheer],
                                                                           dns: DnsServer) -> None:
    dns.set("app.test", "127.0.0.21", "127.0.0.22")
    setup = Setup(run_sheer, dns)
    setup.wait_peers("127.0.0.21", "127.0.0.22")
    setup.answers(4)
    dns.set("app.test", "127.0.0.23")
    seen: list[str] = []

    def moved() -> bool:
        seen.extend(setup.answers(2))         # every request is answered (answers() asserts 200)
        return seen[-2:] == ["127.0.0.23", "127.0.0.23"]

    wait_for(moved, 4.0, "traffic on the new address (TTL 1s, valid=1s)")
    assert setup.servers() == setup.at("127.0.0.23")
    setup.sheer.wait_log('name "app.test" of upstream "app" was resolved to 127.0.0.23 (added '
                         f'127.0.0.23:{setup.back}')
    line = setup.sheer.error_log().split("was resolved to 127.0.0.23")[1].splitlines()[0]
    assert f"removed 127.0.0.21:{setup.back}" in line and f"removed 127.0.0.22:{setup.back}" in line
    assert set(setup.answers(10)) == {"127.0.0.23"}


def test_the_resolver_down_keeps_the_old_peers(run_sheer: Callable[..., Sheer], dns: DnsServer) -> None:
    dns.set("app.test", "127.0.0.21", "127.0.0.22")
    setup = Setup(run_sheer, dns)
    setup.wait_peers("127.0.0.21", "127.0.0.22")
    dns.silent = True
    setup.sheer.wait_log('app.test could not be resolved (110: Operation timed out); upstream "app" keeps '
                         'its '
                         "2 peer(s)", timeout=8)
    assert setup.servers() == setup.at("127.0.0.21", "127.0.0.22")
    assert set(setup.answers(20)) == {"127.0.0.21", "127.0.0.22"}
    dns.silent = False
    dns.set("app.test", "127.0.0.23")                        # back, with news
    setup.wait_peers("127.0.0.23", timeout=8)


def test_a_name_that_no_longer_exists_removes_its_peers_as_nginx(run_sheer: Callable[..., Sheer],
                                                                  dns: DnsServer) -> None:
    dns.set("app.test", "127.0.0.21")
    setup = Setup(run_sheer, dns)
    setup.wait_peers("127.0.0.21")
    dns.set("app.test")                                      # NXDOMAIN
    setup.sheer.wait_log("app.test could not be resolved (3: Host not found)", timeout=8)
    setup.wait_peers()
    status, _ = get(setup.front)
    assert status == 502
    setup.sheer.wait_log("no live upstreams while connecting to upstream")


@pytest.mark.parametrize(("forge", "logged"), [
    (wrong_id, "wrong ident"),
    (wrong_question, "unexpected DNS response for evil.test"),
    (oversized, "oversized UDP DNS response of"),
    (garbage, "invalid UDP DNS response"),
])
def test_forged_and_broken_answers_are_ignored_and_logged(run_sheer: Callable[..., Sheer], dns: DnsServer,
                                                          forge: Any, logged: str) -> None:
    dns.set("app.test", "127.0.0.21", "127.0.0.22")
    dns.forge = forge                 # each sent before the real answer, from the server's own address
    setup = Setup(run_sheer, dns)
    setup.wait_peers("127.0.0.21", "127.0.0.22")
    setup.sheer.wait_log(logged)
    assert "127.0.0.99" not in setup.sheer.error_log()
    assert "127.0.1." not in json.dumps(setup.peers())


def test_a_truncated_udp_answer_is_asked_again_over_tcp(run_sheer: Callable[..., Sheer],
                                                        dns: DnsServer) -> None:
    dns.set("app.test", "127.0.0.21", "127.0.0.22")
    dns.truncate = True
    setup = Setup(run_sheer, dns)
    setup.wait_peers("127.0.0.21", "127.0.0.22")
    assert ("app.test", "A", "tcp") in dns.asked


def test_a_reload_keeps_the_resolved_peers_while_the_resolver_is_down(run_sheer: Callable[..., Sheer],
                                                                     dns: DnsServer) -> None:
    dns.set("app.test", "127.0.0.21", "127.0.0.22")
    setup = Setup(run_sheer, dns, workers=1)
    setup.wait_peers("127.0.0.21", "127.0.0.22")
    dns.silent = True
    old = set(setup.sheer.workers())
    setup.sheer.signal(signal.SIGHUP)
    wait_for(lambda: not old & set(setup.sheer.workers()) and len(setup.sheer.workers()) == 2, 10.0,
             "the new generation")
    assert setup.servers() == setup.at("127.0.0.21", "127.0.0.22")    # nginx's preresolve
    assert set(setup.answers(10)) == {"127.0.0.21", "127.0.0.22"}


def test_api_changes_and_counters_of_a_slot_start_afresh_for_a_new_address(run_sheer: Callable[..., Sheer],
                                                                          dns: DnsServer) -> None:
    dns.set("app.test", "127.0.0.21")
    setup = Setup(run_sheer, dns, workers=1)
    setup.wait_peers("127.0.0.21")
    setup.answers(5)
    peer, = setup.peers()
    assert peer["requests"] == 5
    request = urllib.request.Request(f"http://127.0.0.1:{setup.api}/api/9/http/upstreams/app/servers/{peer['id']}",
                                     data=b'{"weight": 7}', method="PATCH")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read())["weight"] == 7
    dns.set("app.test", "127.0.0.22")
    setup.wait_peers("127.0.0.22")
    new, = setup.peers()
    assert (new["requests"], new["weight"], new["name"]) == (0, 1, f"app.test:{setup.back}")
    assert "selected" not in new


def test_health_checks_follow_peers_as_they_come(run_sheer: Callable[..., Sheer], dns: DnsServer) -> None:
    dns.set("app.test", "127.0.0.21")
    setup = Setup(run_sheer, dns, extra="health_check interval=200ms fails=1 passes=1 uri=/;")
    setup.wait_peers("127.0.0.21")
    dns.set("app.test", "127.0.0.21", "127.0.0.24")           # .24 has no listener on the port
    wait_for(lambda: {p["server"]: p["state"]
                      for p in setup.peers()}.get(f"127.0.0.24:{setup.back}") == "unhealthy",
             8.0, "the new peer checked and found unhealthy")
    setup.sheer.wait_log(f"peer 127.0.0.24:{setup.back} in upstream \"app\" is unhealthy")
    assert set(setup.answers(10)) == {"127.0.0.21"}


def test_proxy_pass_with_a_variable_resolves_per_request_and_keeps_the_answer(run_sheer: Callable[..., Sheer],
                                                                              dns: DnsServer) -> None:
    dns.set("app.test", "127.0.0.21", "127.0.0.22")
    dns.ttl = 30
    front, back, silent_front = free_port(), free_port(HOSTS), free_port()
    silent = DnsServer("127.0.0.54", ttl=1)
    silent.silent = True
    try:
        sheer = run_sheer(f"""
http {{
    resolver {dns.address} ipv6=off;
    upstream grp {{ server 127.0.0.23:{back}; }}
    server {{ listen 127.0.0.1:{front};
             location / {{ proxy_pass http://$http_x_to; }}
             location /none {{ resolver off_by_default_is_not_nginx; }} }}
    server {{ listen 127.0.0.1:{silent_front}; resolver {silent.address} ipv6=off; resolver_timeout 2s;
             location / {{ proxy_pass http://$http_x_to; }} location /static {{ return 200 "static"; }} }}
    server {{ {" ".join(f"listen {host}:{back};" for host in HOSTS)}
              location / {{ return 200 "$server_addr $request_uri"; }} }}
}}
""".replace("location /none { resolver off_by_default_is_not_nginx; }", ""))
        to = {"X-To": f"app.test:{back}"}
        answers = {get(front, "/a?b=1", to)[1] for _ in range(10)}
        assert answers == {"127.0.0.21 /a?b=1", "127.0.0.22 /a?b=1"}
        assert dns.questions("app.test") == 1                       # kept for its TTL (30s)
        assert get(front, "/", {"X-To": "grp"}) == (200, "127.0.0.23 /")            # an upstream block
        assert get(front, "/", {"X-To": f"127.0.0.22:{back}"}) == (200, "127.0.0.22 /")   # an address
        assert get(front, "/", {"X-To": f"nosuch.test:{back}"})[0] == 502
        sheer.wait_log("nosuch.test could not be resolved (3: Host not found)")
        assert get(front, "/", {"X-To": "ftp:/x"})[0] == 500
        # A resolver that never answers costs resolver_timeout, and the worker serves others meanwhile.
        import threading
        slow: list[tuple[int, str]] = []
        waiting = threading.Thread(target=lambda: slow.append(get(silent_front, "/",
                                                                  {"X-To": f"late.test:{back}"})))
        waiting.start()
        wait_for(lambda: silent.questions("late.test") >= 1, 5.0, "the question")
        assert get(silent_front, "/static") == (200, "static")
        assert not slow                                             # still waiting for its name
        waiting.join(10)
        assert slow and slow[0][0] == 502
        sheer.wait_log("late.test could not be resolved (110: Operation timed out)")
    finally:
        silent.close()


def test_a_stream_upstream_resolves_too(run_sheer: Callable[..., Sheer], dns: DnsServer,
                                        closing: Callable[[Any], Any]) -> None:
    echo = closing(TcpEcho("127.0.0.22"))
    dns.set("echo.test", "127.0.0.22")
    front = free_port()
    sheer = run_sheer(f"""
stream {{
    resolver {dns.address} ipv6=off;
    upstream echo {{ zone echo 64k; server echo.test:{echo.port} resolve; }}
    server {{ listen 127.0.0.1:{front}; proxy_pass echo; }}
}}
""")
    sheer.wait_log('name "echo.test" of upstream "echo" was resolved to 127.0.0.22 (added '
                   f'127.0.0.22:{echo.port})')
    import socket
    with socket.create_connection(("127.0.0.1", front), timeout=5) as conn:
        conn.sendall(b"ping")
        assert conn.recv(16) == b"ping"
    assert echo.connections == 1



def test_a_stream_proxy_pass_with_a_variable_resolves_per_session(
        run_sheer: Callable[..., Sheer], dns: DnsServer, closing: Callable[[Any], Any]) -> None:
    """Stream `proxy_pass $variable:PORT` to a name: resolved with the server's resolver (the http lookups'
    machinery), answers kept while they stand; a name that does not exist is nginx's log line."""
    import socket
    echo = closing(TcpEcho("127.0.0.22"))
    dns.set("echo.test", "127.0.0.21", "127.0.0.22")       # .21 refuses: the next address is tried
    dns.ttl = 30
    front, other = free_port(), free_port()
    sheer = run_sheer(f"""
stream {{
    resolver {dns.address} ipv6=off;
    map $server_port $to {{ default echo.test; }}
    server {{ listen 127.0.0.1:{front}; proxy_pass $to:{echo.port}; proxy_connect_timeout 1s; }}
    server {{ listen 127.0.0.1:{other}; proxy_pass $to.nx:{echo.port}; }}
}}
""")
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", front), timeout=5) as conn:
            conn.sendall(b"ping")
            assert conn.recv(16) == b"ping", sheer.error_log()
    assert echo.connections == 3
    assert dns.questions("echo.test") == 1
    with socket.create_connection(("127.0.0.1", other), timeout=5) as conn:
        assert conn.recv(16) == b""
    sheer.wait_log("echo.test.nx could not be resolved (3: Host not found)")
