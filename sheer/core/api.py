"""nginx Plus's REST API (`api [write=on];`), sans-IO: a method, a path and a body in, a status and a
JSON value out, read from the shared board through a `Reader`.

Paths, objects and field names are nginx Plus's (ngx_http_api_module): `/api/` lists the versions,
`/api/N/nginx`, `/connections`, `/processes`, `/http/requests`, `/http/server_zones/NAME`,
`/{http,stream}/upstreams/NAME[/servers[/ID]]`, `/stream/server_zones/NAME`. Errors are its error
object, with its status, text and code. What sheer leaves out: per-status `codes`, DELETE
(resetting statistics), POST/DELETE of servers (upstreams are static: the configuration says
which servers exist), keyvals, caches, slabs, resolvers, ssl.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sheer.config.balance import MAX_TOTAL_WEIGHT, total_weight_problem
from sheer.config.model import UpstreamServer
from sheer.core.control import PatchError, parse_patch, peer_state
from sheer.core.health import Health
from sheer.core.stats import Block, Kind, Layout, PeerRef

VERSIONS = tuple(range(1, 10))     # nginx Plus R33 answers versions 1 to 9
HREF = "https://nginx.org/en/docs/http/ngx_http_api_module.html"
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
SESSION_CLASSES = ("2xx", "4xx", "5xx")


class Reader(Protocol):
    """What the API reads: the shared board's sums and the API's overrides, the checks' verdicts,
    and who is at each position now (the resolver fills the slots of `server NAME resolve`)."""

    layout: Layout

    def value(self, column: int) -> int: ...

    def overrides(self, row: int) -> tuple[int, int, int]: ...

    def health(self, ref: PeerRef) -> Health | None: ...

    def server(self, ref: PeerRef) -> tuple[UpstreamServer, int] | None:
        """The peer at the position now and since when (ms; 0: from the start), or None: an empty slot."""
        ...


class Writer(Protocol):
    def apply(self, ref: PeerRef, changes: dict[str, int]) -> None: ...


@dataclass(frozen=True)
class Instance:
    """The answering process, for /nginx."""

    version: str
    address: str
    generation: int
    load_time: float
    pid: int
    ppid: int


@dataclass
class Answer:
    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)

    def encode(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode() + b"\n"


class ApiError(Exception):
    def __init__(self, status: int, text: str, code: str) -> None:
        super().__init__(text)
        self.status, self.text, self.code = status, text, code


def error_body(status: int, text: str, code: str, request_id: str) -> dict[str, Any]:
    return {"error": {"status": status, "text": text, "code": code}, "request_id": request_id, "href": HREF}


def iso(ms: int) -> str:
    """nginx Plus's timestamps: ISO 8601 in UTC with milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


class Api:
    def __init__(self, reader: Reader, instance: Instance, *, write: bool, writer: Writer | None,
                 now: float) -> None:
        self.reader = reader
        self.layout = reader.layout
        self.instance = instance
        self.write = write
        self.writer = writer
        self.now = now

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes, request_id: str) -> Answer:
        """`path` is what follows the location's prefix: "", "9/", "9/http/upstreams/app", ..."""
        try:
            value = self._route(method, path.strip("/"), body)
        except ApiError as exc:
            return Answer(exc.status, error_body(exc.status, exc.text, exc.code, request_id),
                          [("Allow", "GET, HEAD, PATCH")] if exc.status == 405 else [])
        if "fields" in query and method in ("GET", "HEAD"):
            value = _only(value, query["fields"])
        return Answer(200, value)

    # --- routing -------------------------------------------------------------------------

    def _route(self, method: str, path: str, body: bytes) -> Any:
        if method not in ("GET", "HEAD", "PATCH", "POST", "DELETE"):
            raise ApiError(405, "method not supported", "MethodNotSupported")
        if method != "GET" and method != "HEAD" and not self.write:
            raise ApiError(405, "method disabled", "MethodDisabled")
        parts = path.split("/") if path else []
        if not parts:
            self._only_get(method)
            return list(VERSIONS)
        if not parts[0].isdigit():
            raise ApiError(404, "path not found", "PathNotFound")
        if int(parts[0]) not in VERSIONS:
            raise ApiError(404, "unknown version", "UnknownVersion")
        rest = parts[1:]
        if len(rest) >= 4 and rest[1] == "upstreams" and rest[0] in ("http", "stream"):
            return self._servers(method, rest[0], rest[2], rest[3:], body)
        self._only_get(method)
        return self._read(rest)

    @staticmethod
    def _only_get(method: str) -> None:
        if method not in ("GET", "HEAD"):
            raise ApiError(405, "method not supported", "MethodNotSupported")

    def _read(self, rest: list[str]) -> Any:
        tree: dict[str, Callable[[], Any]] = {
            "nginx": self.nginx, "processes": self.processes, "connections": self.connections,
        }
        if not rest:
            return [*tree, "http", "stream"]
        head, *tail = rest
        if head in tree and not tail:
            return tree[head]()
        if head not in ("http", "stream"):
            raise ApiError(404, "path not found", "PathNotFound")
        sections = (["requests", "server_zones", "upstreams"] if head == "http"
                    else ["server_zones", "upstreams"])
        if not tail:
            return sections
        what, *names = tail
        if what not in sections or len(names) > 1:
            raise ApiError(404, "path not found", "PathNotFound")
        if what == "requests":
            if names:
                raise ApiError(404, "path not found", "PathNotFound")
            return self.requests()
        if what == "server_zones":
            zones = {name: self.zone(head, block) for (protocol, name), block in self.layout.zones.items()
                     if protocol == head}
            return _pick(zones, names, "server zone not found", "ServerZoneNotFound")
        upstreams = {name: refs for (protocol, name), refs in self.layout.upstreams.items()
                     if protocol == head}
        if names:
            refs = upstreams.get(names[0])
            if refs is None:
                raise ApiError(404, "upstream not found", "UpstreamNotFound")
            return self.upstream(head, refs)
        return {name: self.upstream(head, refs) for name, refs in upstreams.items()}

    # --- objects -------------------------------------------------------------------------

    def nginx(self) -> dict[str, Any]:
        i = self.instance
        return {"version": i.version, "build": "sheer", "address": i.address, "generation": i.generation,
                "load_timestamp": iso(int(i.load_time * 1000)), "timestamp": iso(int(self.now * 1000)),
                "pid": i.pid, "ppid": i.ppid}

    def processes(self) -> dict[str, Any]:
        return {"respawned": self._g("respawned")}

    def _g(self, name: str) -> int:
        return self.reader.value(self.layout.glob.at(name))

    def connections(self) -> dict[str, Any]:
        open_, busy = self._g("active"), self._g("reading") + self._g("writing")
        idle = max(0, open_ - busy)
        return {"accepted": self._g("accepted"), "dropped": self._g("dropped"), "active": open_ - idle,
                "idle": idle}

    def requests(self) -> dict[str, Any]:
        return {"total": self._g("requests"), "current": self._g("reading") + self._g("writing")}

    def zone(self, protocol: str, block: Block) -> dict[str, Any]:
        v = self.reader.value
        if protocol == "http":
            responses = {name: v(block.at(name)) for name in CLASSES}
            responses["total"] = sum(responses.values())
            return {"processing": v(block.at("processing")), "requests": v(block.at("requests")),
                    "responses": responses, "discarded": v(block.at("discarded")),
                    "received": v(block.at("received")), "sent": v(block.at("sent"))}
        sessions = {name: v(block.at(name)) for name in SESSION_CLASSES}
        sessions["total"] = sum(sessions.values())
        return {"processing": v(block.at("processing")), "connections": v(block.at("requests")),
                "sessions": sessions, "discarded": v(block.at("discarded")),
                "received": v(block.at("received")), "sent": v(block.at("sent"))}

    def live(self, refs: tuple[PeerRef, ...]) -> list[tuple[PeerRef, UpstreamServer, int]]:
        """The peers there are now (what nginx Plus lists): each with its server and since when."""
        out = []
        for ref in refs:
            found = self.reader.server(ref)
            if found is not None:
                out.append((ref, *found))
        return out

    def upstream(self, protocol: str, refs: tuple[PeerRef, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {"peers": [self.peer(protocol, ref) for ref, _, _ in self.live(refs)]}
        if protocol == "http":
            out["keepalive"] = 0
        out["zombies"] = 0
        out["zone"] = refs[0].upstream.name if refs else ""
        return out

    def peer(self, protocol: str, ref: PeerRef) -> dict[str, Any]:
        found = self.reader.server(ref)
        server, since = found if found is not None else (ref.server, 0)

        def v(column: int) -> int:
            # A time a slot's previous peer left there is not this peer's (counters restart at zero).
            value = self.reader.value(column)
            return 0 if since and self.layout.kinds[column] is Kind.LATEST and value < since else value

        b = ref.block
        overrides = self.reader.overrides(ref.control)
        unavailable = v(b.at("unavail_until")) > self.now * 1000
        state = peer_state(server, overrides, self.reader.health(ref), unavailable)
        peer: dict[str, Any] = {"id": ref.id, "server": server.name, "name": server.text or server.name,
                                "backup": server.backup, "weight": overrides[2] or server.weight,
                                "state": state,
                                "active": v(b.at("active"))}
        if server.max_conns:
            peer["max_conns"] = server.max_conns
        if protocol == "http":
            peer["requests"] = v(b.at("requests"))
            _average(peer, "header_time", v(b.at("header_time")), v(b.at("header_n")))
            _average(peer, "response_time", v(b.at("response_time")), v(b.at("response_n")))
            responses = {name: v(b.at(name)) for name in CLASSES}
            responses["total"] = sum(responses.values())
            peer["responses"] = responses
        else:
            # a DSR datagram is a session (nginx counts each as a connection); the kernel's fast path
            # steers most of them, and its counters (published by the checker) count here too
            kernel = v(b.at("kernel_datagrams"))
            peer["connections"] = v(b.at("requests")) + kernel
            if kernel:
                peer["kernel"] = {"datagrams": kernel, "bytes": v(b.at("kernel_bytes"))}
            _average(peer, "connect_time", v(b.at("connect_time")), v(b.at("connect_n")))
            _average(peer, "first_byte_time", v(b.at("first_byte_time")), v(b.at("first_byte_n")))
            _average(peer, "response_time", v(b.at("response_time")), v(b.at("response_n")))
        checks = v(b.at("checks"))
        health: dict[str, Any] = {"checks": checks, "fails": v(b.at("check_fails")),
                                  "unhealthy": v(b.at("unhealthy"))}
        if checks:
            health["last_passed"] = bool(v(b.at("last_passed")))
        downstart = v(b.at("downstart"))
        downtime = v(b.at("downtime")) + (max(0, int(self.now * 1000) - downstart) if downstart else 0)
        peer.update({"sent": v(b.at("sent")) + v(b.at("kernel_bytes")), "received": v(b.at("received")),
                     "fails": v(b.at("fails")),
                     "unavail": v(b.at("unavail")), "health_checks": health, "downtime": downtime})
        if downstart:
            peer["downstart"] = iso(downstart)
        selected = v(b.at("selected"))
        if selected:
            peer["selected"] = iso(selected)
        return peer

    def server_conf(self, ref: PeerRef) -> dict[str, Any]:
        """nginx Plus's upstream server object (what GET .../servers/ID and PATCH answer)."""
        down, drain, weight = self.reader.overrides(ref.control)
        found = self.reader.server(ref)
        server = found[0] if found is not None else ref.server
        conf: dict[str, Any] = {"id": ref.id, "server": server.name, "weight": weight or server.weight,
                                "max_conns": server.max_conns, "max_fails": server.max_fails,
                                "fail_timeout": f"{server.fail_timeout:g}s", "slow_start": "0s", "route": "",
                                "backup": server.backup,
                                "down": down == 2 if down else server.down}
        if drain == 2:
            conf["drain"] = True
        return conf

    # --- servers: GET and PATCH ----------------------------------------------------------

    def _servers(self, method: str, protocol: str, name: str, rest: list[str], body: bytes) -> Any:
        if rest[0] != "servers" or len(rest) > 2:
            raise ApiError(404, "path not found", "PathNotFound")
        refs = self.layout.upstreams.get((protocol, name))
        if refs is None:
            raise ApiError(404, "upstream not found", "UpstreamNotFound")
        if len(rest) == 1 or rest[1] == "":
            if method in ("POST", "DELETE", "PATCH"):
                raise ApiError(405, "method not supported", "MethodNotSupported")
            return [self.server_conf(ref) for ref, _, _ in self.live(refs)]
        text = rest[1]
        if not text.isdigit() or (len(text) > 1 and text.startswith("0")):
            raise ApiError(400, "invalid server id", "UpstreamBadServerId")
        index = int(text)
        if index >= len(refs) or self.reader.server(refs[index]) is None:
            raise ApiError(404, "server not found", "UpstreamServerNotFound")
        ref = refs[index]
        if method in ("GET", "HEAD"):
            return self.server_conf(ref)
        if method != "PATCH":
            raise ApiError(405, "method not supported", "MethodNotSupported")
        try:
            document = json.loads(body) if body.strip() else None
        except (ValueError, UnicodeDecodeError, RecursionError):    # [[[[... nested past the C stack's bound
            raise ApiError(415, "json error", "JsonError") from None
        try:
            changes = parse_patch(document, index)
        except PatchError as exc:
            raise ApiError(exc.status, exc.text, exc.code) from None
        if "weight" in changes:
            weights = {other.id: self.reader.overrides(other.control)[2] or server.weight
                       for other, server, _ in self.live(refs)}      # the peers there are now
            weights[ref.id] = changes["weight"]
            if total_weight_problem(ref.upstream.balance.method, sum(weights.values())):
                raise ApiError(400, 'invalid "weight" value: the servers\' total weight would exceed '
                               f"{MAX_TOTAL_WEIGHT} for this upstream's method", "UpstreamBadWeight")
        assert self.writer is not None
        self.writer.apply(ref, changes)
        return self.server_conf(ref)


def _average(peer: dict[str, Any], name: str, total_ms: int, count: int) -> None:
    if count:
        peer[name] = total_ms // count


def _pick(objects: dict[str, Any], names: list[str], text: str, code: str) -> Any:
    if not names:
        return objects
    if names[0] not in objects:
        raise ApiError(404, text, code)
    return objects[names[0]]


def _only(value: Any, fields: str) -> Any:
    """`?fields=a,b`: those fields of an object, of each object of a collection (nginx Plus)."""
    wanted = {name for name in fields.split(",") if name}
    if isinstance(value, dict):
        if value and all(isinstance(item, dict) for item in value.values()) and not (set(value) & wanted):
            return {name: _only(item, fields) if wanted else {} for name, item in value.items()}
        return {key: item for key, item in value.items() if key in wanted}
    return value
