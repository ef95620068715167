"""sheer.core.api and sheer.core.control without sockets: an in-memory board, nginx Plus's paths,
objects and errors, PATCH validation, peer states, and balancers following the overrides."""

from __future__ import annotations

import json
from array import array
from typing import Any

import pytest

from sheer.config.model import Balance, Config, Http, Upstream, UpstreamServer
from sheer.core.api import Api, Instance, iso
from sheer.core.balancers import RoundRobin, make_balancer
from sheer.core.control import FALSE, TRUE, PatchError, UpstreamOverrides, parse_patch, peer_state
from sheer.core.health import Health
from sheer.core.stats import Kind, PeerRef, Registry, layout


def servers(*weights: int) -> tuple[UpstreamServer, ...]:
    return tuple(UpstreamServer(f"10.0.0.{i + 1}", 80, weight=w) for i, w in enumerate(weights))


class Board:
    """Stands in for sheer.runtime.shared.SharedBoard: one row of values, a control table."""

    def __init__(self, upstream: Upstream) -> None:
        self.registry, self.controls = Registry(4096), Registry(64)
        self.layout = layout(Config(http=Http((), (upstream,))), self.registry, self.controls)
        self.values = [0] * 4096
        self.control = {row: [0, 0, 0] for row in range(64)}
        self.cells = memoryview(array("q", [0]))       # the version, as balancers read it per pick
        self.states: dict[int, Health] = {}

    @property
    def version(self) -> int:
        return self.cells[0]

    def value(self, column: int) -> int:
        return self.values[column] if column else 0

    def overrides(self, row: int) -> tuple[int, int, int]:
        down, drain, weight = self.control[row]
        return down, drain, weight

    def health(self, ref: PeerRef) -> Health | None:
        return self.states.get(ref.id)

    def server(self, ref: PeerRef) -> tuple[UpstreamServer, int] | None:
        return ref.server, 0

    def apply(self, ref: PeerRef, changes: dict[str, int]) -> None:
        row = self.control[ref.control]
        for index, name in enumerate(("down", "drain", "weight")):
            if name in changes:
                row[index] = changes[name]
        self.cells[0] += 1


def make(write: bool = True, *weights: int) -> tuple[Board, Api, Upstream]:
    upstream = Upstream("app", servers(*(weights or (1, 2))))
    board = Board(upstream)
    api = Api(board, Instance("0.1.0", "127.0.0.1", 3, 1700000000.0, 11, 10), write=write, writer=board,
              now=1700000100.5)
    return board, api, upstream


def test_layout_places_every_counter_once_and_keeps_columns_across_generations() -> None:
    board, _, upstream = make()
    refs = board.layout.upstreams[("http", "app")]
    columns = {ref.block.at(name) for ref in refs for name in ("requests", "active", "selected")}
    assert len(columns) == 6 and 0 not in columns
    assert board.layout.kinds[refs[0].block.at("active")] is Kind.GAUGE
    assert board.layout.kinds[refs[0].block.at("selected")] is Kind.LATEST
    again = layout(Config(http=Http((), (Upstream("app", upstream.servers + servers(5)),))),
                   board.registry, board.controls)
    kept = again.upstreams[("http", "app")]
    assert [ref.block.base for ref in kept[:2]] == [ref.block.base for ref in refs]
    assert kept[2].block.base not in {ref.block.base for ref in refs}


def test_registry_overflow_goes_to_the_scratch_column() -> None:
    registry = Registry(10)
    assert registry.place(("a",), 5) == 1 and registry.place(("b",), 5) == 0


def test_versions_and_errors() -> None:
    _, api, _ = make()
    assert api.handle("GET", "", {}, b"", "r").body == list(range(1, 10))
    cases = {("GET", "10/nginx"): (404, "UnknownVersion"), ("GET", "x/nginx"): (404, "PathNotFound"),
             ("GET", "9/http/upstreams/none"): (404, "UpstreamNotFound"),
             ("GET", "9/http/upstreams/app/servers/2"): (404, "UpstreamServerNotFound"),
             ("GET", "9/http/upstreams/app/servers/01"): (400, "UpstreamBadServerId"),
             ("OPTIONS", "9/"): (405, "MethodNotSupported"),
             ("DELETE", "9/connections"): (405, "MethodNotSupported")}
    for (method, path), (status, code) in cases.items():
        answer = api.handle(method, path, {}, b"", "rid")
        assert (answer.status, answer.body["error"]["code"]) == (status, code), path
        assert answer.body["request_id"] == "rid"
        assert json.loads(answer.encode()) == answer.body


def test_patch_without_write_is_method_disabled() -> None:
    board, api, _ = make(False)
    answer = api.handle("PATCH", "9/http/upstreams/app/servers/0", {}, b'{"down":true}', "r")
    assert answer.status == 405 and answer.body["error"]["code"] == "MethodDisabled"
    assert board.version == 0


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"{", 415, "JsonError"), (b'"down"', 400, "UpstreamConfFormatError"),
    (b'{"down": 1}', 400, "UpstreamConfFormatError"), (b'{"weight": true}', 400, "UpstreamBadWeight"),
    (b'{"weight": -1}', 400, "UpstreamBadWeight"), (b'{"max_conns": 5}', 400, "UpstreamConfFormatError"),
    (b'{"id": 1}', 400, "UpstreamServerImmutable"), (b'{"servers": []}', 400, "UpstreamConfFormatError")])
def test_bad_patches_change_nothing(body: bytes, status: int, code: str) -> None:
    board, api, _ = make()
    answer = api.handle("PATCH", "9/http/upstreams/app/servers/0", {}, body, "r")
    assert (answer.status, answer.body["error"]["code"]) == (status, code)
    assert board.version == 0 and board.control[0] == [0, 0, 0]


@pytest.mark.parametrize("body", [b"[" * 8000 + b"]" * 8000, b'{"a":' * 5000 + b"1" + b"}" * 5000])
def test_a_body_nested_past_the_decoders_bound_is_a_json_error(body: bytes) -> None:
    """Python 3.11's json gives up with RecursionError (a 415 JsonError here), 3.12's decodes it (then
    not an object, or an unknown parameter: 400): either way an answer, and nothing changed."""
    board, api, _ = make()
    answer = api.handle("PATCH", "9/http/upstreams/app/servers/0", {}, body, "r")
    said = (answer.status, answer.body["error"]["code"])
    assert said in ((415, "JsonError"), (400, "UpstreamConfFormatError"))
    assert board.version == 0 and board.control[0] == [0, 0, 0]


def test_weight_is_held_to_what_a_consistent_hash_can_build() -> None:
    """hash consistent builds weight x 160 points: a PATCH may not make a worker build billions."""
    upstream = Upstream("app", servers(1, 2), balance=Balance("consistent"))
    board = Board(upstream)
    api = Api(board, Instance("0.1.0", "127.0.0.1", 3, 1700000000.0, 11, 10), write=True, writer=board,
              now=1700000100.5)
    answer = api.handle("PATCH", "9/http/upstreams/app/servers/0", {}, b'{"weight": 99999}', "r")
    assert (answer.status, answer.body["error"]["code"]) == (400, "UpstreamBadWeight")
    assert board.version == 0
    assert api.handle("PATCH", "9/http/upstreams/app/servers/0", {}, b'{"weight": 99998}', "r").status == 200


def test_patch_answers_the_server_object() -> None:
    _, api, _ = make()
    answer = api.handle("PATCH", "9/http/upstreams/app/servers/1", {}, b'{"drain": true, "weight": 7}', "r")
    assert answer.status == 200
    assert answer.body == {"id": 1, "server": "10.0.0.2:80", "weight": 7, "max_conns": 0, "max_fails": 1,
                           "fail_timeout": "10s", "slow_start": "0s", "route": "", "backup": False,
                           "down": False, "drain": True}
    peers = api.handle("GET", "9/http/upstreams/app", {}, b"", "r").body["peers"]
    assert [(p["state"], p["weight"]) for p in peers] == [("up", 1), ("draining", 7)]


def test_peer_object_fields_and_times() -> None:
    board, api, _ = make()
    ref = board.layout.upstreams[("http", "app")][0]
    values = {"requests": 4, "2xx": 3, "5xx": 1, "header_time": 30, "header_n": 3, "response_time": 90,
              "response_n": 3, "selected": 1700000099123, "downstart": 1700000100000, "downtime": 500,
              "checks": 5, "check_fails": 2, "unhealthy": 1, "last_passed": 0}
    for name, value in values.items():
        board.values[ref.block.at(name)] = value
    board.states[0] = Health.DOWN
    peer: dict[str, Any] = api.handle("GET", "9/http/upstreams/app", {}, b"", "r").body["peers"][0]
    assert peer["state"] == "unhealthy" and peer["requests"] == 4
    assert peer["responses"] == {"1xx": 0, "2xx": 3, "3xx": 0, "4xx": 0, "5xx": 1, "total": 4}
    assert (peer["header_time"], peer["response_time"]) == (10, 30)
    assert peer["health_checks"] == {"checks": 5, "fails": 2, "unhealthy": 1, "last_passed": False}
    assert peer["downtime"] == 500 + 500 and peer["downstart"] == "2023-11-14T22:15:00.000Z"
    assert peer["selected"] == iso(1700000099123) == "2023-11-14T22:14:59.123Z"
    assert api.handle("GET", "9/http/upstreams", {"fields": ""}, b"", "r").body == {"app": {}}


def test_peer_state_order() -> None:
    server = servers(1)[0]
    assert peer_state(server, (TRUE, TRUE, 0), Health.DOWN, True) == "down"
    assert peer_state(server, (FALSE, TRUE, 0), Health.DOWN, True) == "draining"
    assert peer_state(server, (0, 0, 0), Health.CHECKING, True) == "checking"
    assert peer_state(server, (0, 0, 0), Health.DOWN, True) == "unhealthy"
    assert peer_state(server, (0, 0, 0), Health.UP, True) == "unavail"
    assert peer_state(server, (0, 0, 0), None, False) == "up"
    configured_down = UpstreamServer("10.0.0.9", 80, down=True)
    assert peer_state(configured_down, (0, 0, 0), None, False) == "down"
    assert peer_state(configured_down, (FALSE, 0, 0), None, False) == "up"   # the API brought it up


def test_parse_patch() -> None:
    assert parse_patch({"down": True, "drain": False, "weight": 3}, 0) == {"down": TRUE, "drain": FALSE,
                                                                           "weight": 3}
    with pytest.raises(PatchError):
        parse_patch({"weight": 1_000_001}, 0)


@pytest.mark.parametrize("method", ["round_robin", "least_conn", "hash", "consistent", "maglev", "random"])
def test_every_balancer_follows_the_overrides_at_its_next_request(method: str) -> None:
    from sheer.config.model import Balance
    from sheer.config.template import Template, Var

    balance = Balance(method) if method in ("round_robin", "least_conn", "random") else \
        Balance(method, Template("$remote_addr", (Var("remote_addr"),)))  # type: ignore[arg-type]
    upstream = Upstream("app", servers(1, 1, 1), balance=balance)
    board = Board(upstream)
    rows = tuple(ref.control for ref in board.layout.upstreams[("http", "app")])
    balancer = make_balancer(upstream, overrides=UpstreamOverrides(board, upstream, rows))

    def picks(count: int = 60) -> set[int]:
        chosen = set()
        for n in range(count):
            tried = balancer.start(0, b"10.1.%d.%d" % (n // 256, n % 256))
            peer = balancer.get(tried, 0.0)
            assert peer is not None
            balancer.free(peer, failed=False, now=0.0)
            chosen.add(peer.index)
        return chosen

    assert picks() == {0, 1, 2}
    ref = board.layout.upstreams[("http", "app")][1]
    board.apply(ref, {"drain": TRUE})
    assert picks() == {0, 2}
    board.apply(board.layout.upstreams[("http", "app")][0], {"down": TRUE})
    assert picks() == {2}
    board.apply(ref, {"drain": FALSE})
    board.apply(board.layout.upstreams[("http", "app")][0], {"down": FALSE})
    assert picks() == {0, 1, 2}


def test_weight_changes_rebuild_round_robin_shares() -> None:
    upstream = Upstream("app", servers(1, 1))
    board = Board(upstream)
    refs = board.layout.upstreams[("http", "app")]
    balancer = make_balancer(upstream,
                             overrides=UpstreamOverrides(board, upstream, tuple(r.control for r in refs)))
    assert isinstance(balancer, RoundRobin)
    board.apply(refs[0], {"weight": 3})
    counts = [0, 0]
    for _ in range(40):
        tried = balancer.start()
        peer = balancer.get(tried, 0.0)
        assert peer is not None
        balancer.free(peer, failed=False, now=0.0)
        counts[peer.index] += 1
    assert counts == [30, 10] and balancer.total_weight == 4
