"""`prometheus;`: the shared board in Prometheus's text exposition, built with prometheus-client.

Names follow nginx-prometheus-exporter, so its dashboards and alerts work unchanged: the
`nginx_*` metrics it makes from stub_status and the `nginxplus_*` ones it makes from nginx Plus's
API (same labels: server_zone, upstream, server, code; `state` as 1 up, 2 draining, 3 down,
4 unavail, 5 checking, 6 unhealthy). sheer's own, under `sheer_*`: datagrams forwarded per DSR
service, transparent connect errors by errno, health-check transitions.
"""

from __future__ import annotations

import errno as errno_names
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from sheer.core.api import CLASSES, SESSION_CLASSES, Api, Instance, Reader

STATES = {"up": 1, "draining": 2, "down": 3, "unavail": 4, "checking": 5, "unhealthy": 6}


def _family(name: str, kind: str, doc: str, samples: Iterable[tuple[dict[str, str], float]]) -> Metric:
    """One metric family with the exporter's exact sample names. prometheus-client names a counter
    family `X_total`; the exporter's counters without that suffix (`nginxplus_connections_accepted`)
    keep their name and are exposed untyped, said so in their help."""
    if kind == "counter" and name.endswith("_total"):
        metric = Metric(name[:-len("_total")], doc, "counter")
    elif kind == "counter":
        metric = Metric(name, doc + " (a counter)", "unknown")
    else:
        metric = Metric(name, doc, kind)
    for labels, value in samples:
        metric.add_sample(name, labels, value)
    return metric


class BoardCollector:
    """A prometheus-client collector over one snapshot of the API's objects."""

    def __init__(self, reader: Reader, now: float) -> None:
        self.reader = reader
        self.api = Api(reader, Instance("", "", 0, 0.0, 0, 0), write=False, writer=None, now=now)

    def collect(self) -> Iterator[Metric]:
        api, reader = self.api, self.reader
        connections, requests = api.connections(), api.requests()
        glob = reader.layout.glob
        v = reader.value
        accepted, dropped = connections["accepted"], connections["dropped"]
        reading, writing = v(glob.at("reading")), v(glob.at("writing"))
        opened = connections["active"] + connections["idle"]
        yield from (
            _family("nginx_connections_accepted", "counter", "Accepted client connections", [({}, accepted)]),
            _family("nginx_connections_handled", "counter", "Handled client connections",
                    [({}, accepted - dropped)]),
            _family("nginx_connections_active", "gauge", "Active client connections", [({}, opened)]),
            _family("nginx_connections_reading", "gauge",
                    "Connections where sheer is reading the request header",
                    [({}, reading)]),
            _family("nginx_connections_writing", "gauge", "Connections where sheer is writing the response",
                    [({}, writing)]),
            _family("nginx_connections_waiting", "gauge", "Idle client connections",
                    [({}, connections["idle"])]),
            _family("nginx_http_requests_total", "counter", "Total http requests", [({}, requests["total"])]),
            _family("nginxplus_connections_accepted", "counter", "Accepted client connections",
                    [({}, accepted)]),
            _family("nginxplus_connections_dropped", "counter", "Dropped client connections",
                    [({}, dropped)]),
            _family("nginxplus_connections_active", "gauge", "Active client connections",
                    [({}, connections["active"])]),
            _family("nginxplus_connections_idle", "gauge", "Idle client connections",
                    [({}, connections["idle"])]),
            _family("nginxplus_http_requests_total", "counter", "Total http requests",
                    [({}, requests["total"])]),
            _family("nginxplus_http_requests_current", "gauge", "Current http requests",
                    [({}, requests["current"])]),
        )
        yield from self._zones()
        yield from self._upstreams()
        yield from self._sheer()

    def _zones(self) -> Iterator[Metric]:
        for protocol, prefix, requests_name, classes in (
                ("http", "nginxplus_server_zone", "requests", CLASSES),
                ("stream", "nginxplus_stream_server_zone", "connections", SESSION_CLASSES)):
            zones = {name: self.api.zone(protocol, block)
                     for (kind, name), block in self.reader.layout.zones.items()
                     if kind == protocol}
            if not zones:
                continue
            buckets = "responses" if protocol == "http" else "sessions"
            yield _family(f"{prefix}_processing", "gauge",
                          "Client requests that are currently being processed",
                          [({"server_zone": name}, zone["processing"]) for name, zone in zones.items()])
            yield _family(f"{prefix}_{requests_name}", "counter", f"Total client {requests_name}",
                          [({"server_zone": name}, zone[requests_name]) for name, zone in zones.items()])
            yield _family(f"{prefix}_{buckets}", "counter", f"Total {buckets} sent to clients",
                          [({"server_zone": name, "code": code}, zone[buckets][code])
                           for name, zone in zones.items() for code in classes])
            for field, doc in (("discarded", "Requests completed without sending a response"),
                               ("received", "Bytes received from clients"),
                               ("sent", "Bytes sent to clients")):
                yield _family(f"{prefix}_{field}", "counter", doc,
                              [({"server_zone": name}, zone[field]) for name, zone in zones.items()])

    def _upstreams(self) -> Iterator[Metric]:
        for protocol, prefix in (("http", "nginxplus_upstream_server"),
                                 ("stream", "nginxplus_stream_upstream_server")):
            peers = [(name, self.api.peer(protocol, ref))
                     for (kind, name), refs in self.reader.layout.upstreams.items()
                     if kind == protocol for ref, _, _ in self.api.live(refs)]
            if not peers:
                continue

            def each(pick: Any,
                     peers: list[tuple[str, dict[str, Any]]] = peers) -> list[tuple[dict[str, str], float]]:
                return [({"upstream": name, "server": peer["server"]}, pick(peer)) for name, peer in peers]

            yield _family(f"{prefix}_state", "gauge", "Current state (1 up, 2 draining, 3 down, 4 unavail, "
                          "5 checking, 6 unhealthy)", each(lambda p: STATES[p["state"]]))
            yield _family(f"{prefix}_active", "gauge", "Active connections", each(lambda p: p["active"]))
            yield _family(f"{prefix}_limit", "gauge", "Limit for connections (max_conns); 0 means no limit",
                          each(lambda p: p.get("max_conns", 0)))
            if protocol == "http":
                yield _family(f"{prefix}_requests", "counter", "Total client requests",
                              each(lambda p: p["requests"]))
                yield _family(f"{prefix}_responses", "counter", "Total responses sent to clients",
                              [({"upstream": name, "server": peer["server"], "code": code},
                                peer["responses"][code])
                               for name, peer in peers for code in CLASSES])
                times: tuple[tuple[str, str], ...] = (
                    ("header_time", "Average time to get the response header from the server"),
                    ("response_time", "Average time to get the full response from the server"))
            else:
                yield _family(f"{prefix}_connections", "counter", "Total number of client connections",
                              each(lambda p: p["connections"]))
                times = (("connect_time", "Average time to connect to the upstream server"),
                         ("first_byte_time", "Average time to receive the first byte of data"),
                         ("response_time", "Average time to receive the last byte of data"))
            for field, doc in times:
                yield _family(f"{prefix}_{field}", "gauge", doc + " (ms)",
                              each(lambda p, f=field: p.get(f, 0)))
            for field, doc in (("sent", "Bytes sent to this server"),
                               ("received", "Bytes received from this server"),
                               ("fails", "Number of unsuccessful attempts to communicate with the server"),
                               ("unavail", ("How many times the server became unavailable for client "
                                            "requests because the max_fails threshold was reached"))):
                yield _family(f"{prefix}_{field}", "counter", doc, each(lambda p, f=field: p[f]))
            for field, doc in (("checks", "Total health check requests"), ("fails", "Failed health checks"),
                               ("unhealthy",
                                "How many times the server became unhealthy (state 'unhealthy')")):
                yield _family(f"{prefix}_health_checks_{field}", "counter", doc,
                              each(lambda p, f=field: p["health_checks"][f]))

    def _sheer(self) -> Iterator[Metric]:
        layout, v = self.reader.layout, self.reader.value
        if layout.dsr:
            for field, doc in (("datagrams", "Datagrams forwarded by direct server return"),
                               ("bytes", "Payload bytes forwarded by direct server return"),
                               ("no_live_upstreams", "Datagrams dropped: no live upstream"),
                               ("send_errors", "Datagrams the raw socket could not send")):
                yield _family(f"sheer_dsr_{field}_total", "counter", doc,
                              [({"service": name}, v(block.at(field))) for name, block in layout.dsr.items()])
            kernel_docs = (("kernel_datagrams", "Datagrams the kernel's fast path steered to an upstream"),
                           ("kernel_bytes", "Bytes (IP datagrams) the kernel's fast path steered upstream"))
            for field, doc in kernel_docs:
                yield _family(f"sheer_dsr_{field}_total", "counter", doc,
                              [({"service": name}, v(block.at(field))) for name, block in layout.dsr.items()])
            yield _family("sheer_dsr_kernel_path", "gauge",
                          "1 while the kernel's fast path steers the service",
                          [({"service": name}, v(block.at("kernel"))) for name, block in layout.dsr.items()])
            per_server = [(name, ref) for (protocol, name), refs in layout.upstreams.items()
                          if protocol == "stream" for ref in refs]
            for field, doc in (("datagrams", "Datagrams the kernel's fast path steered to this server"),
                               ("bytes", "Bytes the kernel's fast path steered to this server")):
                yield _family(f"sheer_stream_upstream_server_kernel_{field}_total", "counter", doc,
                              [({"upstream": name, "server": ref.server.name},
                                v(ref.block.at(f"kernel_{field}"))) for name, ref in per_server])
        errors = [(code, v(layout.errno_column(code))) for code in range(1, 134)]
        yield _family("sheer_transparent_connect_errors_total", "counter",
                      "Upstream connections with the client's address (proxy_bind transparent) that failed, "
                      "by errno",
                      [({"errno": str(code), "error": errno_names.errorcode.get(code, str(code))}, count)
                       for code, count in errors if count])
        transitions = []
        for (protocol, name), refs in layout.upstreams.items():
            for ref in refs:
                for to, column in (("healthy", "became_healthy"), ("unhealthy", "became_unhealthy")):
                    transitions.append(({"protocol": protocol, "upstream": name, "server": ref.server.name,
                                         "to": to}, v(ref.block.at(column))))
        yield _family("sheer_upstream_server_health_transitions_total", "counter",
                      "Active health check state changes of a server", transitions)


def exposition(reader: Reader, now: float | None = None) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BoardCollector(reader, time.time() if now is None else now))
    return generate_latest(registry), CONTENT_TYPE_LATEST
