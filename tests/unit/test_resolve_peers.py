"""Peers that come and go: balancers (round robin and Maglev tables), the shared peer-set board
that every worker reads, the resolver task's bookkeeping (log lines, counters and API changes
starting afresh, health checks told, the plumbing note), the API listing only the peers there
are, and `sheer net plan` using the addresses of now."""

from __future__ import annotations

from array import array
from pathlib import Path

import pytest
from balancer_kit import pick

from sheer.config import load
from sheer.config.model import Balance, Config, Http, Upstream, UpstreamServer
from sheer.config.names import with_peers
from sheer.config.template import STREAM_VARIABLES, compile_template
from sheer.core.api import Api, Instance
from sheer.core.balancers import make_balancer
from sheer.core.control import UpstreamOverrides
from sheer.core.http.uri import BadProxyUrl, parse_proxy_url
from sheer.core.peers import PEERS_PER_NAME, positions, slot_server
from sheer.core.resolve_wire import NOERROR, NXDOMAIN, TIMEDOUT, Resolution
from sheer.core.stats import PeerRef
from sheer.net.plan import plan
from sheer.runtime.peerset import PeerSetBoard, names_of
from sheer.runtime.resolver import ResolverTask
from sheer.runtime.shared import SharedBoard

TEMPLATE = UpstreamServer("app.test", 8080, weight=2, resolve=True, text="app.test:8080")


def upstream(method: str = "round_robin") -> Upstream:
    key = compile_template("$remote_addr", None, STREAM_VARIABLES) if method != "round_robin" else None
    return Upstream("app", (UpstreamServer("10.0.0.9", 8080, text="10.0.0.9:8080"),), zone="app",
                    resolve=(TEMPLATE,), balance=Balance(method, key))  # type: ignore[arg-type]


class FakeSlots:
    def __init__(self, count: int) -> None:
        self.version = 0
        self.addresses: list[str | None] = [None] * count

    def set(self, *addresses: str) -> None:
        for slot in range(1, len(self.addresses)):
            self.addresses[slot] = addresses[slot - 1] if slot - 1 < len(addresses) else None
        self.version += 2

    def read(self) -> tuple[str | None, ...]:
        return tuple(self.addresses)


class FakeControl:
    version = 0
    cells = memoryview(array("q", [0]))

    def overrides(self, row: int) -> tuple[int, int, int]:
        return 0, 0, 0


def balancer_with(method: str = "round_robin"):  # type: ignore[no-untyped-def]
    u = upstream(method)
    slots = FakeSlots(positions(u))
    overrides = UpstreamOverrides(FakeControl(), u, tuple(range(positions(u))), slots)
    return make_balancer(u, overrides=overrides), slots


def test_positions_are_the_static_servers_then_the_slots() -> None:
    assert positions(upstream()) == 1 + PEERS_PER_NAME


def test_a_balancer_follows_the_slots() -> None:
    b, slots = balancer_with()
    assert {pick(b) for _ in range(4)} == {"9"}                 # nothing resolved yet: the static server
    slots.set("10.0.0.1", "10.0.0.2")
    assert {pick(b) for _ in range(10)} == {"9", "1", "2"}
    assert [(p.index, p.server.host, p.server.weight, p.server.text) for p in b.peers] == [
        (0, "10.0.0.9", 1, "10.0.0.9:8080"), (1, "10.0.0.1", 2, "app.test:8080"), (2, "10.0.0.2", 2,
                                                                                   "app.test:8080")]
    failed = b.peers[1]
    b.free(b.get(b.start(), 1.0) or failed, failed=True, now=1.0)
    slots.set("10.0.0.3", "10.0.0.2")                          # slot 1 gets a new address: a new peer
    b.start()
    assert b.peers[1].server.host == "10.0.0.3" and b.peers[1].fails == 0 and b.peers[1] is not failed
    slots.set()
    assert {pick(b) for _ in range(4)} == {"9"}


def test_maglev_tables_are_rebuilt_from_the_peers_there_are() -> None:
    b, slots = balancer_with("maglev")
    slots.set("10.0.0.1", "10.0.0.2", "10.0.0.3")
    keys = [f"198.51.100.{n}".encode() for n in range(200)]
    before = {key: pick(b, key) for key in keys}
    assert set(before.values()) == {"9", "1", "2", "3"}
    slots.set("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4")   # one more peer: few keys move
    after = {key: pick(b, key) for key in keys}
    moved = sum(before[key] != after[key] for key in keys)
    assert 0 < moved < len(keys) / 2
    assert all(after[key] == "4" for key in keys if before[key] != after[key])


# --- the shared board ------------------------------------------------------------------------

def resolving_config(tmp_path: Path, extra: str = "") -> Config:
    path = tmp_path / "lb.conf"
    path.write_text(f"""
http {{
    resolver 127.0.0.53;
    upstream app {{ zone app 64k; server app.test:8080 resolve; server 10.0.0.9:8080; }}
    server {{ listen 80; location / {{ {extra} proxy_pass http://app; }} }}
}}
""")
    return load(str(path))


def test_the_board_shares_addresses_and_a_reload_keeps_them(tmp_path: Path) -> None:
    config = resolving_config(tmp_path)
    board = PeerSetBoard(config)
    name, = board.names
    u = name.upstream
    view = board.view(u)
    assert view is not None
    assert view.read() == (None,) * positions(u)
    with board.changing():
        assert board.version % 2 == 1                           # readers wait while it is odd
        board.put(name, 0, "10.0.0.1", 1234)
        board.put(name, 3, "2001:db8::1", 1235)
        board.set_valid(name, 99.5)
    assert board.version % 2 == 0
    assert view.read()[1] == "10.0.0.1" and view.read()[4] == "2001:db8::1"
    again = resolving_config(tmp_path)                          # a reload: a new config, the same names
    board2 = PeerSetBoard(again, board)
    name2, = board2.names
    assert board2.read(name2.upstream)[1] == ("10.0.0.1", 1234)
    assert board2.valid(name2) == 99.5


def test_a_reload_that_changes_the_port_keeps_the_addresses(tmp_path: Path) -> None:
    """nginx's preresolve matches the name, not the port: the old addresses with the new port."""
    board = PeerSetBoard(resolving_config(tmp_path))
    name, = board.names
    with board.changing():
        board.put(name, 0, "10.0.0.1", 1234)
    path = tmp_path / "lb.conf"
    path.write_text(path.read_text().replace("app.test:8080", "app.test:8082"))
    board2 = PeerSetBoard(load(str(path)), board)
    name2, = board2.names
    assert board2.read(name2.upstream)[1] == ("10.0.0.1", 1234)
    assert slot_server(name2.upstream.resolve[0], "10.0.0.1").port == 8082
    path.write_text(path.read_text().replace("app.test:8082", "other.test:8082"))
    board3 = PeerSetBoard(load(str(path)), board2)                # another name: nothing carried over
    assert board3.read(board3.names[0].upstream)[1] == (None, 0)


def test_a_writer_that_died_mid_change_does_not_stop_readers(tmp_path: Path) -> None:
    board = PeerSetBoard(resolving_config(tmp_path))
    name, = board.names
    board._bump()                                               # odd, forever
    assert board.read(name.upstream)[1] == (None, 0)             # bounded, not a hang
    with board.changing():                                       # the next writer finishes it
        board.put(name, 0, "10.0.0.1")
    assert board.version % 2 == 0


# --- the resolver task's bookkeeping --------------------------------------------------------

class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def log(self, level: str, message: str) -> None:
        self.lines.append((level, message))


def task_for(config: Config) -> tuple[ResolverTask, PeerSetBoard, SharedBoard, Log,
                                      list[tuple[int, str | None]]]:
    board, shared, log = PeerSetBoard(config), SharedBoard(config), Log()
    followed: list[tuple[int, str | None]] = []
    task = ResolverTask(config, board, shared, shared.take_row(), log,  # type: ignore[arg-type]
                        lambda name, position, server: followed.append((position, server and server.host)))
    return task, board, shared, log, followed


def test_an_answer_fills_the_board_logs_and_tells_the_checks(tmp_path: Path) -> None:
    task, board, _, log, followed = task_for(resolving_config(tmp_path))
    name, = board.names
    task.record(name, Resolution(NOERROR, ("10.0.0.1", "10.0.0.2"), 30))
    assert [address for address, _ in board.read(name.upstream)][1:4] == ["10.0.0.1", "10.0.0.2", None]
    assert log.lines == [("notice", ('name "app.test" of upstream "app" was resolved to 10.0.0.1, 10.0.0.2 '
                                    "(added 10.0.0.1:8080, added 10.0.0.2:8080)"))]
    assert followed == [(1, "10.0.0.1"), (2, "10.0.0.2")]
    log.lines.clear()
    task.record(name, Resolution(TIMEDOUT))
    assert log.lines == [("error", ('app.test could not be resolved (110: Operation timed out); '
                                   'upstream "app" keeps its 2 peer(s)'))]
    assert [address for address, _ in board.read(name.upstream)][1:3] == ["10.0.0.1", "10.0.0.2"]
    log.lines.clear()
    task.record(name, Resolution(NXDOMAIN))
    assert log.lines[0] == ("error", "app.test could not be resolved (3: Host not found)")
    assert log.lines[1] == ("notice", ('name "app.test" of upstream "app" was resolved to nothing '
                                      "(removed 10.0.0.1:8080, removed 10.0.0.2:8080)"))
    assert followed[-2:] == [(1, None), (2, None)]


def test_a_new_peer_in_a_slot_starts_from_zero(tmp_path: Path) -> None:
    task, board, shared, _, _ = task_for(resolving_config(tmp_path))
    name, = board.names
    ref = shared.layout.peers(name.upstream)[1]
    worker = shared.writer(shared.take_row())
    task.record(name, Resolution(NOERROR, ("10.0.0.1",), 30))
    worker[ref.block.at("requests")] += 7
    with shared.changing():
        shared.set_override(ref.control, weight=5)
    others = tuple(f"10.0.1.{n}" for n in range(PEERS_PER_NAME))  # slot 0 is reused last: fill them all
    task.record(name, Resolution(NOERROR, others, 30))
    assert board.read(name.upstream)[1][0] == others[-1]          # a new peer in slot 0
    assert shared.value(ref.block.at("requests")) == 0
    assert shared.overrides(ref.control) == (0, 0, 0)


def test_addresses_that_change_the_plumbing_say_so(tmp_path: Path) -> None:
    config = resolving_config(tmp_path, "proxy_bind $remote_addr transparent;")
    task, board, _, log, _ = task_for(config)
    name, = board.names
    task.record(name, Resolution(NOERROR, ("10.0.0.1",), 30))
    assert not any(level == "warn" for level, _ in log.lines)      # a first answer: what apply resolved
    task.record(name, Resolution(NOERROR, ("10.0.0.1", "10.0.0.2"), 30))
    assert any(level == "warn" and f'run "sheer net apply -c {config.file}" again' in message
               for level, message in log.lines)
    log.lines.clear()
    other = tmp_path / "plain"
    other.mkdir()
    plain, _, _, plain_log, _ = task_for(resolving_config(other))
    plain_name, = plain.board.names
    plain.record(plain_name, Resolution(NOERROR, ("10.0.0.1",), 30))
    plain.record(plain_name, Resolution(NOERROR, ("10.0.0.2",), 30))
    assert not any(level == "warn" for level, _ in plain_log.lines)  # no transparent server: no plumbing


def test_net_plan_uses_the_addresses_of_now_and_says_they_follow_a_name(tmp_path: Path) -> None:
    config = resolving_config(tmp_path, "proxy_bind $remote_addr transparent;")
    name, = names_of(config)
    now = with_peers(config, {("http", "app"): [slot_server(name.server, "10.0.0.1")]})
    commands = "\n".join(plan(now).commands())
    assert "10.0.0.1" in commands and "10.0.0.9" in commands
    assert any("app.test:8080: resolved while sheer runs" in note for note in plan(now).notes)


# --- the API lists the peers there are -------------------------------------------------------

def test_the_api_lists_filled_slots_only(tmp_path: Path) -> None:
    task, board, shared, _, _ = task_for(resolving_config(tmp_path))
    name, = board.names
    task.record(name, Resolution(NOERROR, ("10.0.0.1",), 30))

    class Reader:
        layout = shared.layout
        value = shared.value
        overrides = shared.overrides

        def health(self, ref: PeerRef) -> None:
            return None

        def server(self, ref: PeerRef) -> tuple[UpstreamServer, int] | None:
            if not ref.server.resolve:
                return ref.server, 0
            address, since = board.read(ref.upstream)[ref.id]
            return (slot_server(ref.server, address), since) if address else None

    api = Api(Reader(), Instance("0", "127.0.0.1", 1, 0.0, 1, 1), write=False, writer=None, now=0.0)
    peers = api.handle("GET", "9/http/upstreams/app", {}, b"", "r").body["peers"]
    assert [(p["id"], p["server"], p["name"]) for p in peers] == [
        (0, "10.0.0.9:8080", "10.0.0.9:8080"), (1, "10.0.0.1:8080", "app.test:8080")]
    assert api.handle("GET", "9/http/upstreams/app/servers/2", {}, b"", "r").status == 404


# --- proxy_pass with variables ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "host", "port", "no_port", "uri", "proxy_host"), [
    ("http://app.test", "app.test", 80, True, "", "app.test"),
    ("http://app.test:8080/a/b?c", "app.test", 8080, False, "/a/b?c", "app.test:8080"),
    ("http://app.test:80?x", "app.test", 80, False, "/?x", "app.test"),
    ("HTTP://[2001:db8::1]:81/", "2001:db8::1", 81, False, "/", "[2001:db8::1]:81"),
    ("http://10.0.0.1", "10.0.0.1", 80, True, "", "10.0.0.1"),
])
def test_a_proxy_url_made_of_variables(text: str, host: str, port: int, no_port: bool, uri: str,
                                       proxy_host: str) -> None:
    url = parse_proxy_url(text)
    assert (url.host, url.port, url.no_port, url.uri, url.proxy_host) == (host, port, no_port, uri,
                                                                          proxy_host)


@pytest.mark.parametrize(("text", "message"), [
    ("ftp://x", 'invalid URL prefix in "ftp://x"'),
    ("http://", 'invalid URL prefix in "http://"'),
    ("http://x:0/", 'invalid port in upstream "x:0/"'),
    ("http://[::1/", 'invalid IPv6 address in upstream "[::1/"'),
    ("http://:80/", 'no host in upstream ":80/"'),
])
def test_a_bad_proxy_url_is_nginx_s_error(text: str, message: str) -> None:
    with pytest.raises(BadProxyUrl) as info:
        parse_proxy_url(text)
    assert str(info.value) == message


def test_with_peers_keeps_everything_else(tmp_path: Path) -> None:
    config = resolving_config(tmp_path)
    assert with_peers(config, {}) == config
    assert config.http is not None
    assert Http(config.http.servers, config.http.upstreams) == config.http
