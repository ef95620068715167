"""Where a request goes, decided when its head is read (nginx's find_config): its virtual host, its
location's plan, the client address `set_real_ip_from` trusts, its variables, and the checks that
depend on the location (client_max_body_size)."""

from __future__ import annotations

import time
from typing import Protocol

from sheer.config.model import Location
from sheer.core.http.reader import RequestReader
from sheer.core.http.request_head import RequestHead
from sheer.core.http.routing import VirtualHost
from sheer.core.http.variables import Connection, RequestVariables
from sheer.core.http.verdict import Rejected
from sheer.core.realip import for_request
from sheer.io.counting import HttpCounters, ZoneColumns
from sheer.io.http.request import Request
from sheer.io.http.rewriting import auto_redirect, captured, server_phase
from sheer.io.http.site import Plan, Site


class Routing(Protocol):
    """The connection (sheer.io.http.client.ClientConnection) a request arrived on."""

    conn: Connection | None
    site: Site
    reader: RequestReader
    body_timeout: float

    @property
    def counters(self) -> HttpCounters: ...


def route(client: Routing, request: Request, head: RequestHead) -> None:
    """Sets request.plan (a location's, a server-level `return`'s, or the server's own for a 404),
    request.vars, its status_zone, and request.rejected when its declared body is too large."""
    conn = client.conn
    assert conn is not None
    site = client.site
    host = head.host or ""
    uri = head.uri
    known = site.routes.get((host, uri))      # where this host and URI went before, if nothing varies
    if known is not None:
        vhost, match = known[0], None
    elif site.vhosts.capturing:       # a server_name regex with captures: they are variables
        vhost, match = site.vhosts.find(host)
    else:
        vhost, match = site.vhosts.select(host), None
    request.vhost = vhost
    request.vars = variables = RequestVariables(conn, request.method, request.raw_uri, uri, head.args,
                                                request.version, request.headers,
                                                host or vhost.name or conn.server_addr, vhost.name,
                                                request.length, time.time(), head.line, request.number)
    tls = vhost.server.tls
    if tls is not None and tls.verify_client != "off" and conn.tls is not None and conn.tls.server_name \
            and site.vhosts.select(conn.tls.server_name.lower()).server is not vhost.server:
        # nginx's ngx_http_set_virtual_server: a server that verifies clients is not reached by a Host
        # other than the name its handshake was made for
        request.rejected = Rejected(421, "client attempted to request the server name different from the one "
                                         "that was negotiated")
    if match is not None:
        variables.captured(match)
    zone = known[3] if known is not None else client.counters.zones.get(id(vhost.server))
    if zone is not None:
        request.zone = zone
        row = client.counters.row
        row[zone.processing] += 1
        row[zone.requests] += 1
    location: Location | None
    if known is None:
        location, found = _locate(client, request, head, vhost, zone, match is None)
        if found is None:                   # no location: a 404 from the server's own plan
            request.plan = site.refusal_plans[id(vhost.server)]
            request.keepalive = request.keepalive and not request.body.expected
            return
        plan = found
    else:
        _, location, plan, _ = known
        if location.real_ip is not None:      # set_real_ip_from
            real = for_request(location.real_ip, conn.remote_addr, conn.proxy, request.headers)
            if real is not None:
                variables.remote_addr = real[0]
                variables.remote_port = "" if real[1] is None else str(real[1])
    request.plan = plan
    client.body_timeout = plan.client_body_timeout
    if location is not None and request.body.expected:     # no body: nothing to limit
        too_large = client.reader.limit_body(plan.client_max_body_size)
        if too_large is not None:          # answered 413; the body is read and dropped, then the close
            request.rejected = too_large


def _locate(client: Routing, request: Request, head: RequestHead, vhost: VirtualHost,
            zone: ZoneColumns | None, memo: bool) -> tuple[Location | None, Plan | None]:
    """The server's rewrite phase, the location and its plan (None: no location, a 404); the client
    address set_real_ip_from trusts. A location found for the URI alone (no script, captures, auto
    redirect or limit_except) is remembered for the host and URI (`memo`: the host's server was too)."""
    site = client.site
    variables = request.vars
    assert variables is not None
    conn = variables.conn
    plan = site.server_plans.get(id(vhost.server))
    uri = head.uri
    if plan is None and vhost.server.rewrite is not None:     # nginx's server rewrite phase
        memo = False
        server_phase(client, request, vhost)
        if request.answer is not None:
            plan = site.refusal_plans[id(vhost.server)]
        uri = variables.uri
    location, done = vhost.locations.find(uri) if plan is None else (None, False)
    if location is not None and location.internal:     # a client's own request: nginx's 404
        location = None
    elif done is None and location is not None:    # nginx's auto redirect to a proxy_pass location's name
        memo = False
        auto_redirect(request, location)
    real = for_request(location.real_ip if location is not None else vhost.server.real_ip,
                       conn.remote_addr, conn.proxy, request.headers)
    if real is not None:
        variables.remote_addr = real[0]
        variables.remote_port = "" if real[1] is None else str(real[1])
    if location is not None and location.regex is not None and location.regex.groups:
        memo = False
        captured(variables, location, uri)     # `location ~ ^/(.*)$`: $1 for proxy_pass, return...
    if plan is None and location is not None:
        plan = site.plan(location, request.method)
        if memo and location.limit_except is None:
            site.remember(head.host or "", uri, (vhost, location, plan, zone))
    return location, plan
