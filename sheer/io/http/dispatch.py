"""What a parsed request gets: its virtual host, its normalized URI and variables, the client address
`set_real_ip_from` trusts, and its location's plan, or the status that says why there is none; and the
response of a `return` location."""

from __future__ import annotations

import time

from sheer.config.model import HttpReturn
from sheer.core.http.pages import REDIRECTS, error_body, simple_response
from sheer.core.http.routing import host_name
from sheer.core.http.uri import BadUri, normalize, split_uri
from sheer.core.http.variables import Connection, RequestVariables
from sheer.core.realip import for_request
from sheer.core.variables import render_bytes
from sheer.io.counting import HttpCounters
from sheer.io.http.request import Request
from sheer.io.http.site import SERVER, Plan, Site


def route(site: Site, conn: Connection, request: Request, counters: HttpCounters) -> Plan | int:
    """The plan of the request's location; 400 (a bad URI, HTTP/1.1 without Host) or 404 (no location)."""
    raw_uri = request.raw_uri
    if raw_uri.startswith(("http://", "https://")):   # absolute-form request target
        rest = raw_uri.partition("//")[2]
        authority, slash, path = rest.partition("/")
        raw_uri = slash + path
        request.host = authority
    host = host_name(request.host or "")
    vhost = site.vhosts.select(host)
    path, args = split_uri(raw_uri)
    try:
        uri = normalize(path)
    except BadUri:
        uri = path
        request.keepalive = False
        bad = True
    else:
        bad = request.host is None and request.version == "HTTP/1.1"
    request.vars = RequestVariables(conn, request.method, request.raw_uri, uri, args, request.version,
                                    request.headers, host or vhost.name or conn.server_addr, vhost.name,
                                    request.length, time.time())
    zone = counters.zones.get(id(vhost.server))
    if zone is not None:
        request.zone = zone
        row = counters.row
        row[zone.processing] += 1
        row[zone.requests] += 1
    server_plan = site.server_plans.get(id(vhost.server))
    location = vhost.locations.match(uri) if server_plan is None else None
    real = for_request(location.real_ip if location is not None else vhost.server.real_ip,
                       conn.remote_addr, conn.proxy, request.headers)
    if real is not None:
        request.vars.remote_addr = real[0]
        request.vars.remote_port = "" if real[1] is None else str(real[1])
    if bad:
        return 400
    if server_plan is not None:
        return server_plan
    if location is None:
        return 404
    return site.plan(location)


def returned(request: Request, returned: HttpReturn, date: bytes, *, keepalive: bool) -> bytes:
    """The response of `return code [text|URL]` (not 444: that one closes without any)."""
    assert request.vars is not None
    code = returned.code
    text = render_bytes(returned.text, request.vars) if returned.text is not None else None
    location = None
    if code in REDIRECTS:
        location, body, content_type = text, error_body(code), b"text/html"
    elif text is not None:
        body, content_type = text, b"text/plain"
    elif code >= 400:
        body, content_type = error_body(code), b"text/html"
    else:
        body, content_type = b"", b"text/plain"
    head = request.method == b"HEAD"
    data = simple_response(code, server=SERVER, date=date, body=body,
                           content_type=content_type, keepalive=keepalive, head=head, location=location)
    request.body.detach()
    request.vars.status = code
    request.vars.body_bytes_sent = 0 if head else len(body)
    return data
