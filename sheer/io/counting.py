"""The proxies' counters on the shared board: connections and requests (stub_status, nginx Plus's
/connections and /http/requests), each `status_zone`'s requests or sessions, responses and bytes,
each upstream server's (nginx Plus's peer), DSR services' datagrams, transparent connect errors.

A handful of int64 additions per request into this worker's own row (sheer.core.stats): the hot
path pays an index and an add, nothing is locked, formatted or sent anywhere.
"""

from __future__ import annotations

from sheer.config.model import HttpServer, Upstream
from sheer.core.stats import Block, Layout, status_class

CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class HttpCounters:
    __slots__ = ("accepted", "active", "layout", "reading", "requests", "row", "writing", "zones")

    def __init__(self, row: memoryview, layout: Layout, servers: list[HttpServer]) -> None:
        self.row = row
        self.layout = layout
        glob = layout.glob
        self.accepted = glob.at("accepted")
        self.active = glob.at("active")
        self.reading = glob.at("reading")
        self.writing = glob.at("writing")
        self.requests = glob.at("requests")
        # id(HttpServer) -> its zone's columns: processing, requests, 1xx..5xx, discarded, received, sent
        self.zones: dict[int, ZoneColumns] = {}
        for server in servers:
            block = layout.zones.get(("http", server.status_zone)) if server.status_zone else None
            if block is not None:
                self.zones[id(server)] = ZoneColumns(block)


class ZoneColumns:
    __slots__ = ("classes", "discarded", "processing", "received", "requests", "sent")

    def __init__(self, block: Block) -> None:
        self.processing = block.at("processing")
        self.requests = block.at("requests")
        self.classes = tuple(block.at(name) for name in CLASSES)
        self.discarded = block.at("discarded")
        self.received = block.at("received")
        self.sent = block.at("sent")

    def finished(self, row: memoryview, status: int, received: int, sent: int) -> None:
        row[self.processing] -= 1
        if status == 0 or status == 499 or status == 444:
            row[self.discarded] += 1           # ended without a response (nginx Plus: discarded)
        else:
            row[self.classes[int(status_class(status)[0]) - 1]] += 1
        row[self.received] += received
        row[self.sent] += sent


class PeerColumns:
    """One upstream server's columns (nginx Plus's peer): what a proxied request adds to them."""

    __slots__ = ("active", "classes", "fails", "header_n", "header_time", "received", "requests",
                 "response_n", "response_time", "selected", "sent", "unavail", "unavail_until")

    def __init__(self, block: Block) -> None:
        self.active = block.at("active")
        self.classes = tuple(block.at(name) for name in CLASSES)
        self.fails = block.at("fails")
        self.header_n = block.at("header_n")
        self.header_time = block.at("header_time")
        self.received = block.at("received")
        self.requests = block.at("requests")
        self.response_n = block.at("response_n")
        self.response_time = block.at("response_time")
        self.selected = block.at("selected")
        self.sent = block.at("sent")
        self.unavail = block.at("unavail")
        self.unavail_until = block.at("unavail_until")


def peer_columns(layout: Layout, upstream: Upstream) -> tuple[PeerColumns, ...]:
    return tuple(PeerColumns(ref.block) for ref in layout.peers(upstream))


def stream_zone(layout: Layout, name: str | None) -> ZoneColumns | None:
    block = layout.zones.get(("stream", name)) if name else None
    return ZoneColumns(block) if block is not None else None


class DsrColumns:
    __slots__ = ("bytes", "datagrams", "no_live_upstreams", "send_errors")

    def __init__(self, block: Block) -> None:
        self.bytes = block.at("bytes")
        self.datagrams = block.at("datagrams")
        self.no_live_upstreams = block.at("no_live_upstreams")
        self.send_errors = block.at("send_errors")
