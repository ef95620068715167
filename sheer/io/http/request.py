"""One request as the client side read it, and what a relay must answer to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from sheer.core.http.variables import RequestVariables
from sheer.core.http.verdict import Rejected
from sheer.io.counting import HttpCounters, ZoneColumns
from sheer.io.http.body import RequestBody

if TYPE_CHECKING:
    from sheer.core.http.rewrite import Request as RewriteState
    from sheer.core.http.rewrite import Result
    from sheer.core.http.routing import VirtualHost
    from sheer.io.http.body_file import BodyFile
    from sheer.io.http.site import Plan


class Relay(Protocol):
    def client_paused(self, paused: bool) -> None: ...


class Request:
    # what a request that needs none of it keeps: on the class, set per instance only when it changes
    # (a slot would be stored per request; these are read on rare paths only)
    finished = False
    error_paged = False       # went through an error_page once (nginx's recursive_error_pages off)
    internal = False          # internally redirected (r->internal): `internal` locations serve it
    status_override: int | None = None    # error_page's status for what its redirect answers
    zone: ZoneColumns | None = None       # its status_zone's columns
    rejected: Rejected | None = None      # refused before any handler: answered with nginx's status
    upgrade = False           # it asked for another protocol (Upgrade): a 101 makes a tunnel
    redirects = 0             # internal redirects so far (index, try_files): nginx allows 10
    # headers for the error page sheer answers (a directory's Location, a 416's Content-Range)
    headers_out: tuple[tuple[bytes, bytes], ...] = ()
    answer: Result | None = None          # what the server's rewrite script answered (in its turn)
    rewritten: RewriteState | None = None     # the rewrite module's flags, once a script ran
    carried: tuple[tuple[bytes, bytes], ...] = ()    # an intercepted 401's WWW-Authenticate
    post_action: Any = None               # its post_action under way (sheer.io.http.post_action)
    body_file: BodyFile | None = None     # $request_body_file's, removed when it is finished

    def __init__(self, method: bytes, raw_uri: str, version: str, headers: list[tuple[bytes, bytes]],
                 keepalive: bool, body: RequestBody, host: str | None, expect_continue: bool,
                 length: int = 0, number: int = 0, http09: bool = False, counted: bool = False) -> None:
        self.method = method
        self.raw_uri = raw_uri
        self.version = version
        self.headers = headers
        self.keepalive = keepalive
        self.body = body
        self.host = host
        self.expect_continue = expect_continue
        self.vars: RequestVariables | None = None
        self.length = length      # the head's bytes
        self.vhost: VirtualHost | None = None       # its server (an error_page's redirect is looked up there)
        self.number = number        # its place on the connection (nginx's c->requests when it came)
        self.counted = counted      # counted as "writing" (stub_status) until it is finished
        self.http09 = http09        # HTTP/0.9: the answer is the body alone, then the connection closes
        self.plan: Plan | None = None           # where it was routed (or its server, when refused)

    def uncount(self, counters: HttpCounters) -> None:
        """Over (answered, or its connection lost): out of stub_status's "writing", into its zone; its
        body's file (client_body_temp_path) removed."""
        if self.body_file is not None:
            self.body_file.remove()
        if not self.counted:
            return
        self.counted = False
        counters.row[counters.writing] -= 1
        zone = self.zone
        if zone is not None:
            variables = self.vars
            status = variables.status if variables is not None else 0
            sent = variables.bytes_sent if variables is not None else 0
            zone.finished(counters.row, status, self.length + self.body.size, sent)
