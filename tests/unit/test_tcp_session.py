"""The sans-IO TCP stream session (sheer.core.tcp): next upstream, half-close, timeouts, with a fake clock."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from sheer.config import load
from sheer.config.model import StreamServer
from sheer.core.balancers import make_balancer
from sheer.core.bind import PLUMBING_HINT
from sheer.core.tcp import TIMED_OUT, Flow, Phase, TcpServer, TcpSession
from sheer.core.tcp_commands import (
    ARM,
    CLOSE,
    Answer,
    Close,
    Command,
    Connect,
    Context,
    Log,
    Resolve,
    Shutdown,
    Side,
)

REFUSED = "connect() failed (111: Connection refused)"
CLIENT = ("192.0.2.7", 40000)


class Driver:
    """What sheer.io would be: renders the variables, keys the deadlines."""

    def variable(self, name: str) -> str:
        return {"remote_addr": CLIENT[0], "remote_port": str(CLIENT[1])}.get(name, "")


def server(tmp_path: Path, body: str, servers: int = 3) -> StreamServer:
    lines = "".join(f"server 10.0.0.{n}:80;" for n in range(1, servers + 1))
    path = tmp_path / "lb.conf"
    path.write_text(f"stream {{ upstream u {{ {lines} }} server {{ listen 127.0.0.1:9000; {body} }} }}\n")
    return load(str(path)).stream.servers[0]  # type: ignore[union-attr]


def shared(tmp_path: Path, body: str = "proxy_pass u;", servers: int = 3, preread: bool = False) -> TcpServer:
    conf = server(tmp_path, body, servers)
    return TcpServer(conf, make_balancer(conf.upstream) if conf.upstream else None, preread)


def session(srv: TcpServer) -> TcpSession:
    return TcpSession(srv, CLIENT, Driver())


def connects(commands: object) -> list[str]:
    return [c.peer.name for c in commands if isinstance(c, Connect)]  # type: ignore[attr-defined]


def logs(commands: tuple[Command, ...] | list[Command]) -> list[tuple[str, str]]:
    return [(c.level, c.message) for c in commands if isinstance(c, Log)]


def arm(srv: TcpServer, commands: Sequence[Command]) -> list[Command]:
    """The driver's part of `Arm`: its timer set to the earliest deadline. The other commands, in order."""
    if ARM in commands:
        srv.deadlines.armed = srv.deadlines.next_deadline()
    return [c for c in commands if c is not ARM]


def relaying(srv: TcpServer, now: float = 0.0) -> TcpSession:
    s = session(srv)
    assert connects(arm(srv, s.accepted(now))) == ["10.0.0.1:80"]
    assert arm(srv, s.connected(now + 0.001)) == []
    assert s.phase is Phase.RELAYING
    return s


def test_the_upstreams_eof_ends_the_session_by_default(tmp_path: Path) -> None:
    srv = shared(tmp_path)
    s = relaying(srv)
    commands = s.eof(Side.UPSTREAM, 1.0)
    assert list(commands) == [Log("info", "upstream disconnected", Context.BYTES), CLOSE]
    assert s.phase is Phase.DONE
    assert s.eof(Side.CLIENT, 1.1) == ()                 # done: later events change nothing
    assert srv.balancer.peers[0].conns == 0             # type: ignore[union-attr]  # freed


def test_without_info_lines_the_first_eof_is_a_close_alone(tmp_path: Path) -> None:
    """An error log that takes no info lines: no line for the driver to match and drop per session."""
    conf = server(tmp_path, "proxy_pass u;")
    srv = TcpServer(conf, make_balancer(conf.upstream) if conf.upstream else None, False, info=False)
    assert list(relaying(srv).eof(Side.CLIENT, 1.0)) == [CLOSE]


@pytest.mark.parametrize(("bind", "host", "transparent"), [
    ("$remote_addr transparent", CLIENT[0], True),      # the client's host, taken without rendering
    ("$remote_addr", CLIENT[0], False),
    ("${remote_addr}", CLIENT[0], False),
    ("$remote_addr:$remote_port transparent", CLIENT[0], True),    # rendered, as any other template
    ("192.0.2.99", "192.0.2.99", False),
])
def test_proxy_bind_binds_what_it_renders_to(tmp_path: Path, bind: str, host: str, transparent: bool) -> None:
    s = session(shared(tmp_path, f"proxy_bind {bind}; proxy_pass u;"))
    connect = [command for command in s.accepted(0.0) if isinstance(command, Connect)]
    assert connect[0].bind is not None
    assert (connect[0].bind.host, connect[0].bind.transparent) == (host, transparent)
    assert connect[0].bind.port == (CLIENT[1] if "remote_port" in bind else 0)


def test_proxy_bind_remote_addr_of_a_unix_client_is_an_invalid_address(tmp_path: Path) -> None:
    srv = shared(tmp_path, "proxy_bind $remote_addr; proxy_pass u;")
    commands = TcpSession(srv, ("unix:", None), Driver()).accepted(0.0)   # type: ignore[arg-type]
    assert logs(commands)[0] == ("error", 'invalid local address "unix:" while connecting to upstream')


def test_half_close_passes_each_eof_on_and_ends_after_both(tmp_path: Path) -> None:
    s = relaying(shared(tmp_path, "proxy_half_close on; proxy_pass u;"))
    assert list(s.eof(Side.CLIENT, 1.0)) == [Shutdown(Side.UPSTREAM)]
    assert (s.from_client, s.from_upstream, s.phase) == (Flow.ENDED, Flow.OPEN, Phase.RELAYING)
    assert list(s.eof(Side.UPSTREAM, 2.0)) == [Shutdown(Side.CLIENT), CLOSE]
    assert s.phase is Phase.DONE


def test_connect_refused_goes_to_the_next_upstream(tmp_path: Path) -> None:
    srv = shared(tmp_path)
    s = session(srv)
    s.accepted(0.0)
    commands = s.connect_failed(REFUSED, 0.01)
    assert logs(commands) == [
        ("error", f"{REFUSED} while connecting to upstream"),
        ("warn", "upstream server temporarily disabled while connecting to upstream")]   # max_fails=1
    assert [c.peer.name for c in commands if isinstance(c, Log)] == ["10.0.0.1:80"] * 2  # type: ignore[union-attr]
    assert connects(commands) == ["10.0.0.2:80"]
    assert s.upstream_addr == "10.0.0.1:80, 10.0.0.2:80"
    s.connected(0.02)
    assert s.connect_time == pytest.approx(0.01)


def test_connect_refused_everywhere_fails_with_502(tmp_path: Path) -> None:
    s = session(shared(tmp_path, servers=2))
    s.accepted(0.0)
    s.connect_failed(REFUSED, 0.0)
    commands = s.connect_failed(REFUSED, 0.0)
    assert connects(commands) == [] and commands[-1] == Close(discard=True)
    assert (s.status, s.phase) == (502, Phase.DONE)


def test_proxy_next_upstream_off_tries_one_peer(tmp_path: Path) -> None:
    s = session(shared(tmp_path, "proxy_next_upstream off; proxy_pass u;"))
    s.accepted(0.0)
    assert connects(s.connect_failed(REFUSED, 0.0)) == [] and s.status == 502


def test_proxy_next_upstream_tries_limits_the_peers(tmp_path: Path) -> None:
    s = session(shared(tmp_path, "proxy_next_upstream_tries 2; proxy_pass u;"))
    s.accepted(0.0)
    assert connects(s.connect_failed(REFUSED, 0.0)) == ["10.0.0.2:80"]
    assert connects(s.connect_failed(REFUSED, 0.0)) == [] and s.phase is Phase.DONE


def test_proxy_next_upstream_timeout_counts_from_the_first_try(tmp_path: Path) -> None:
    s = session(shared(tmp_path, "proxy_next_upstream_timeout 5s; proxy_pass u;"))
    s.accepted(100.0)
    assert connects(s.connect_failed(REFUSED, 104.9)) == ["10.0.0.2:80"]
    assert connects(s.connect_failed(REFUSED, 105.0)) == [] and s.status == 502


def test_a_failure_on_our_side_ends_the_session_without_blaming_the_peer(tmp_path: Path) -> None:
    srv = shared(tmp_path)
    s = session(srv)
    s.accepted(0.0)
    commands = s.connect_failed("setsockopt(IP_TRANSPARENT) failed (1: Operation not permitted)", 0.0,
                                ours="alert", fix="run as root")
    assert logs(commands) == [("alert", ("setsockopt(IP_TRANSPARENT) failed (1: Operation not permitted) "
                                        "while connecting to upstream"))]
    assert commands[0].hint == "run as root"                      # type: ignore[union-attr]
    assert s.status == 500 and connects(commands) == []
    assert srv.balancer.peers[0].fails == 0                       # type: ignore[union-attr]


def test_connect_timeout_is_a_tick_of_the_fake_clock(tmp_path: Path) -> None:
    srv = shared(tmp_path, "proxy_connect_timeout 2s; proxy_bind $remote_addr transparent; proxy_pass u;")
    s = session(srv)
    assert connects(s.accepted(10.0)) == ["10.0.0.1:80"]
    assert srv.deadlines.next_deadline() is None                 # connect() may complete at once
    assert list(s.connecting(10.0)) == [ARM]       # it did not: the first deadline sets the timer
    assert srv.deadlines.next_deadline() == 12.0
    assert srv.deadlines.due(11.99) == []
    assert srv.deadlines.due(12.0) == [s.io]
    commands = s.tick(12.0)
    assert logs(commands)[0] == ("error", f"{TIMED_OUT} while connecting to upstream")
    assert commands[0].hint == PLUMBING_HINT                      # type: ignore[union-attr]  # transparent
    assert connects(commands) == ["10.0.0.2:80"]
    s.connecting(12.0)
    assert srv.deadlines.next_deadline() == 14.0                 # the next try waits its own 2s


def test_connected_in_time_is_not_timed_out(tmp_path: Path) -> None:
    srv = shared(tmp_path, "proxy_connect_timeout 2s; proxy_timeout 30s; proxy_pass u;")
    s = session(srv)
    s.accepted(0.0)
    s.connecting(0.0)
    s.connected(1.0)
    assert srv.deadlines.due(2.0) == []                          # the connect deadline was forgotten
    assert srv.deadlines.next_deadline() == 31.0


def test_proxy_timeout_ends_a_session_where_nothing_moved(tmp_path: Path) -> None:
    srv = shared(tmp_path, "proxy_timeout 30s; proxy_pass u;")
    s = relaying(srv)
    assert srv.deadlines.due(29.9) == []
    assert srv.deadlines.due(30.001) == [s.io]
    commands = s.tick(30.001)
    assert logs(commands) == [("info", "connection timed out")] and commands[-1] == CLOSE
    assert commands[0].peer is not None                          # type: ignore[union-attr]  # names the upstream


def test_bytes_moved_keep_it_for_another_proxy_timeout(tmp_path: Path) -> None:
    srv = shared(tmp_path, "proxy_timeout 30s; proxy_pass u;")
    s = relaying(srv)
    srv.deadlines.due(30.001)
    assert arm(srv, s.tick(30.001, moved=10)) == [] and s.phase is Phase.RELAYING
    assert srv.deadlines.next_deadline() == pytest.approx(60.001)
    srv.deadlines.due(60.001)
    assert logs(s.tick(60.001, moved=10)) == [("info", "connection timed out")]   # and nothing since


def test_a_held_back_remainder_still_draining_keeps_it(tmp_path: Path) -> None:
    """A slow reader takes a remainder a little at a time: no new reads, but progress all the same."""
    srv = shared(tmp_path, "proxy_timeout 30s; proxy_pass u;")
    s = relaying(srv)
    srv.deadlines.due(30.001)
    s.tick(30.001, moved=300_005)              # read, and sent on as far as the client took it
    srv.deadlines.due(60.001)
    assert arm(srv, s.tick(60.001, moved=300_005 + 65_536)) == [] and s.phase is Phase.RELAYING


def test_return_answers_and_ends_once_delivered(tmp_path: Path) -> None:
    srv = shared(tmp_path, 'return "hi $remote_addr\\n";')
    s = session(srv)
    commands = s.accepted(0.0)
    assert commands[0] == Answer(b"hi 192.0.2.7\n")
    assert s.from_client is Flow.ENDED                            # nothing more is read from the client
    assert list(s.eof(Side.UPSTREAM, 0.1)) == [Close(discard=True)]


def test_an_invalid_proxy_bind_is_said_and_the_connection_made_unbound(tmp_path: Path) -> None:
    """nginx (ngx_stream_proxy_set_local): `invalid local address`, then connect without binding."""
    s = session(shared(tmp_path, "proxy_bind $remote_port; proxy_pass u;"))
    commands = s.accepted(0.0)
    assert logs(commands)[0] == ("error", 'invalid local address "40000" while connecting to upstream')
    connect = [command for command in commands if isinstance(command, Connect)]
    assert len(connect) == 1 and connect[0].bind is None and s.status != 500


def test_relay_failures_blame_the_side_that_failed(tmp_path: Path) -> None:
    s = relaying(shared(tmp_path))
    commands = s.failed(Side.CLIENT, "recv", ConnectionResetError(104, "Connection reset by peer"), 1.0)
    assert logs(commands) == [("info", ("recv() failed (104: Connection reset by peer) while proxying and "
                                       "reading from client"))]
    s = relaying(shared(tmp_path))
    commands = s.failed(Side.UPSTREAM, "send", BrokenPipeError(32, "Broken pipe"), 1.0)
    assert logs(commands) == [("error", ("send() failed (32: Broken pipe) while proxying and sending to "
                                        "upstream"))]
    assert commands[0].peer is None                               # type: ignore[union-attr]  # as nginx


V1 = b"PROXY TCP4 198.51.100.9 192.0.2.1 5555 443\r\n"


def test_a_trusted_proxy_header_gives_the_client_and_what_follows_is_data(tmp_path: Path) -> None:
    srv = shared(tmp_path, "set_real_ip_from 192.0.2.0/24; proxy_pass u;", preread=True)
    s = session(srv)
    assert list(s.accepted(0.0)) == [ARM] and s.phase is Phase.PREREAD
    assert s.preread(V1[:10], 0.1) == ()
    commands = s.preread(V1 + b"GET", 0.2)
    assert connects(commands) == ["10.0.0.1:80"]
    assert s.client == ("198.51.100.9", 5555) and s.header_length == len(V1)
    assert s.proxy is not None and s.proxy.destination == ("192.0.2.1", 443)


def test_a_broken_proxy_header_is_a_400(tmp_path: Path) -> None:
    s = session(shared(tmp_path, preread=True))
    s.accepted(0.0)
    commands = s.preread(b"GET / HTTP/1.0\r\n", 0.1)
    assert logs(commands)[0][1].startswith('broken header: "GET / HTTP/1.0')
    assert s.status == 400 and s.phase is Phase.DONE


def test_a_slow_proxy_header_times_out(tmp_path: Path) -> None:
    srv = shared(tmp_path, "proxy_protocol_timeout 3s; proxy_pass u;", preread=True)
    s = session(srv)
    s.accepted(0.0)
    assert srv.deadlines.due(3.0) == [s.io]
    commands = s.tick(3.0)
    assert logs(commands) == [("info", ("client timed out (110: Connection timed out) while reading "
                                       "PROXY protocol"))]
    assert commands[0].context is Context.CLIENT                 # type: ignore[union-attr]


def test_a_client_gone_while_reading_the_header(tmp_path: Path) -> None:
    s = session(shared(tmp_path, preread=True))
    s.accepted(0.0)
    line = ("info", "client closed connection while reading PROXY protocol")
    assert logs(s.eof(Side.CLIENT, 1.0)) == [line]
    assert s.phase is Phase.DONE


def test_aborted_frees_the_peer_and_forgets_the_deadline(tmp_path: Path) -> None:
    srv = shared(tmp_path)
    s = relaying(srv)
    assert list(s.aborted(5.0)) == [CLOSE]
    assert len(srv.deadlines) == 0 and srv.balancer.peers[0].conns == 0   # type: ignore[union-attr]


def test_a_name_to_resolve_waits_for_its_answer(tmp_path: Path) -> None:
    """`proxy_pass $variable` rendering a name: `Resolve` goes to the driver, whose answer (`chosen`)
    carries the session on to a peer, or to nginx's error; an answer after the end changes nothing."""
    conf = server(tmp_path, "resolver 127.0.0.53; proxy_pass $remote_addr.test:80;")
    balancer = shared(tmp_path).balancer
    assert balancer is not None
    srv = TcpServer(conf, None, False, lambda value: Resolve(value))
    s = session(srv)
    assert s.accepted(0.0) == (Resolve("192.0.2.7.test:80"),)
    assert s.phase is Phase.CONNECTING          # the client's data is held meanwhile, not read as a header
    assert connects(s.chosen(balancer, 0.5)) == ["10.0.0.1:80"]
    failed = session(srv)
    failed.accepted(0.0)
    commands = failed.chosen(("app.test could not be resolved (3: Host not found)", 502), 1.0)
    assert logs(commands) == [("error", "app.test could not be resolved (3: Host not found)")]
    assert failed.status == 502 and failed.phase is Phase.DONE
    assert failed.chosen(balancer, 2.0) == ()
