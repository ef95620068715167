"""`ssl_preread on` in the sans-IO TCP session (sheer.core.tcp): the ClientHello read in the PREREAD
phase, after a PROXY header too; routing by $ssl_preread_server_name through `proxy_pass $variable`;
nginx's verdicts on plain bytes, silence and an endless hello, with a fake clock."""

from __future__ import annotations

from pathlib import Path

from test_client_hello import hello
from test_tcp_session import CLIENT, connects

from sheer.config import load
from sheer.core import proxy_protocol
from sheer.core.balancers import Balancer, make_balancer
from sheer.core.tcp import Phase, TcpServer, TcpSession
from sheer.core.tcp_commands import Connect, Log

UPSTREAMS = "upstream a.test { server 10.0.0.1:443; } upstream b.test { server 10.0.0.2:443; }"


class Driver:
    def __init__(self) -> None:
        self.session: TcpSession | None = None

    def variable(self, name: str) -> str:
        hello = self.session.client_hello if self.session is not None else None
        if name == "ssl_preread_server_name":
            return hello.server_name if hello else ""
        return {"remote_addr": CLIENT[0], "remote_port": str(CLIENT[1])}.get(name, "")


def shared(tmp_path: Path, body: str, preread: bool = False) -> TcpServer:
    path = tmp_path / "lb.conf"
    path.write_text(f"stream {{ {UPSTREAMS} server {{ listen 127.0.0.1:9000; ssl_preread on; "
                    f"preread_timeout 5s; preread_buffer_size 1k; {body} }} }}\n")
    config = load(str(path))
    assert config.stream is not None
    balancers = {u.name: make_balancer(u) for u in config.stream.upstreams}

    def choose(value: str) -> Balancer | tuple[str, int]:
        return balancers.get(value) or (f'no port in upstream "{value}"', 500)

    server = config.stream.servers[0]
    return TcpServer(server, make_balancer(server.upstream) if server.upstream else None, preread, choose)


def session(srv: TcpServer) -> TcpSession:
    driver = Driver()
    driver.session = TcpSession(srv, CLIENT, driver)
    return driver.session


def test_routed_by_the_name_in_the_client_hello(tmp_path: Path) -> None:
    srv = shared(tmp_path, "proxy_pass $ssl_preread_server_name;")
    for name, peer in (("a.test", "10.0.0.1:443"), ("b.test", "10.0.0.2:443")):
        s = session(srv)
        s.accepted(0.0)
        data = hello(name, ["h2"])
        assert s.preread(data[:20], 0.1) == () and s.phase is Phase.PREREAD   # more to read
        assert connects(s.preread(data, 0.2)) == [peer]
        assert s.client_hello is not None and s.client_hello.alpn == ("h2",)
        assert s.header_length == 0                   # the whole hello goes on to the upstream


def test_after_a_proxy_header(tmp_path: Path) -> None:
    srv = shared(tmp_path, "set_real_ip_from 192.0.2.0/24; proxy_pass $ssl_preread_server_name;",
                 preread=True)
    s = session(srv)
    s.accepted(0.0)
    header = proxy_protocol.v1(("198.51.100.9", 5000), ("192.0.2.1", 443))
    assert not connects(s.preread(header, 0.1)) and s.reading_hello and s.phase is Phase.PREREAD
    assert connects(s.preread(header + hello("b.test"), 0.2)) == ["10.0.0.2:443"]
    assert s.header_length == len(header) and s.client[0] == "198.51.100.9"


def test_plain_bytes_silence_and_an_endless_hello(tmp_path: Path) -> None:
    srv = shared(tmp_path, "proxy_pass a.test;")
    s = session(srv)
    s.accepted(0.0)
    assert connects(s.preread(b"GET / HTTP/1.0\r\n", 0.1)) == ["10.0.0.1:443"]   # declined: goes on
    assert s.client_hello is None
    silent = session(srv)
    silent.accepted(0.0)
    assert connects(silent.tick(5.0)) == ["10.0.0.1:443"]           # preread_timeout: goes on too
    endless = session(srv)
    endless.accepted(0.0)
    commands = endless.preread(b"\x16\x03\x01\x40\x00" + b"\x01" * 1100, 0.1)
    assert any(isinstance(c, Log) and c.message == "preread buffer full" for c in commands)
    assert endless.status == 400 and endless.phase is Phase.DONE and not any(isinstance(c, Connect)
                                                                             for c in commands)


def test_unknown_name_is_nginx_s_500(tmp_path: Path) -> None:
    s = session(shared(tmp_path, "proxy_pass $ssl_preread_server_name;"))
    s.accepted(0.0)
    commands = s.preread(hello("c.test"), 0.1)
    assert s.status == 500 and any(isinstance(c, Log) and c.message == 'no port in upstream "c.test"'
                                   for c in commands)
