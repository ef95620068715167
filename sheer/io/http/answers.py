"""What sheer answers by itself on a client connection: `return`, error pages, requests refused
before any handler (with nginx's info line in the error log), and the request they belong to."""

from __future__ import annotations

import time
from typing import Protocol

from sheer.core.access import FORBIDDEN, allowed
from sheer.core.http.add_header import added, chunked_with_trailers, last_chunk
from sheer.core.http.pages import (
    BAD_REQUESTS,
    REDIRECTS,
    error_body,
    own_location,
    simple_response,
)
from sheer.core.http.request_line import INVALID_09_METHOD
from sheer.core.http.variables import Connection, RequestVariables
from sheer.core.http.verdict import Rejected
from sheer.core.variables import render_bytes
from sheer.io.http.body import Reader, RequestBody
from sheer.io.http.error_pages import error_page
from sheer.io.http.gzipping import gzip_answer
from sheer.io.http.logline import client_error
from sheer.io.http.request import Request
from sheer.io.http.site import SERVER, Plan, Site

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Client(Reader, Protocol):
    """The connection answering (sheer.io.http.client.ClientConnection)."""

    @property
    def conn(self) -> Connection | None: ...
    @property
    def site(self) -> Site: ...
    def keepalive_after(self, request: Request) -> bool: ...
    def discard_body(self, request: Request) -> Rejected | None: ...
    def write(self, data: bytes) -> None: ...
    def finish(self, request: Request, plan: Plan | None, *, keepalive: bool) -> None: ...
    def dispatch(self, request: Request, plan: Plan) -> None: ...


def refused_request(client: Client, rejected: Rejected, line: bytes, plan: Plan) -> Request:
    """A stand-in for the request nginx refused, so that it is answered in its turn and logged
    (`$request` is what the client sent up to the end of its first line)."""
    conn = client.conn
    assert conn is not None
    request = Request(b"", "", "", [], False, RequestBody(client, None, False), None, False)
    request.rejected = rejected
    request.plan = plan
    request.http09 = rejected is INVALID_09_METHOD or rejected.http09
    server_name = client.site.vhosts.default.name
    request.vars = RequestVariables(conn, b"", "", "", "", "", [], server_name or conn.server_addr,
                                    server_name, len(line), time.time())
    request.vars.line = line.decode("latin-1")
    return request


def answer_refused(client: Client, request: Request) -> None:
    """nginx's status and page for a request it refused; the connection closes after it."""
    rejected = request.rejected
    assert rejected is not None
    action = None
    if rejected.level == "info":
        action = "reading client request line" if not request.method else "reading client request headers"
    client_error(client, request, rejected.level, rejected.message, action)
    plan = request.plan
    if rejected.status != 408 and not request.http09 and not request.body.expected and plan is not None:
        # nginx's special response: the default server's own error_page lines hold for it too
        request.vhost = client.site.vhosts.default
        if error_page(client, request, rejected.status, plan):
            return
    answer_error(client, request, rejected.status, request.plan, keepalive=False)


def answer_error(client: Client, request: Request, status: int, plan: Plan | None, *,
                 keepalive: bool = True) -> None:
    if request.rejected is None and error_page(client, request, status, plan):
        return
    if client.discard_body(request) is not None:
        keepalive = False
    keepalive = keepalive and client.keepalive_after(request)
    body = error_body(status)
    if request.http09:
        data, keepalive = body, False
    else:
        extra = _added(request, status, plan) + request.headers_out
        head = request.method == b"HEAD"
        chunked = _chunked(request, status, plan)
        gzipped = False
        if plan is not None and plan.gzip is not None:        # without gzip on, nothing more to do
            body, extra, keepalive, gzipped, chunked = _gzip(request, plan, status, b"text/html", body,
                                                             extra, keepalive, chunked)
        data = simple_response(status, server=SERVER, date=client.site.date(), body=body,
                               content_type=b"text/html", keepalive=keepalive, head=head, extra=extra,
                               chunked=chunked, gzipped=gzipped,
                               keepalive_line=plan.keepalive_line if plan is not None else b"")
        data = _sent(request, status, plan, data, chunked)
    if request.vars is not None:
        request.vars.status = 400 if status in BAD_REQUESTS else status     # nginx logs what it sent
        request.vars.body_bytes_sent = len(body)
        client.write(data)
    client.finish(request, plan, keepalive=keepalive)


def forbidden(client: Client, request: Request, plan: Plan) -> bool:
    """The location's allow/deny, in nginx's access phase: after `return` (its rewrite phase comes
    first), before proxy_pass and the status handlers. A 403 and nginx's error line when denied."""
    location = plan.location
    if location is None or request.vars is None:
        return False
    rules = location.access
    if not rules or allowed(rules, request.vars.remote_addr):     # after realip, as nginx's
        return False
    client_error(client, request, "error", FORBIDDEN, None)
    answer_error(client, request, 403, plan)
    return True


def answer_return(client: Client, request: Request, plan: Plan) -> None:
    returned = plan.return_
    assert returned is not None and request.vars is not None
    text = render_bytes(returned.text, request.vars) if returned.text is not None else None
    answer_code(client, request, plan, returned.code, text)


def answer_code(client: Client, request: Request, plan: Plan, code: int, text: bytes | None) -> None:
    """`return CODE [TEXT]` (and a rewrite's redirect: TEXT is its Location), as ngx_http_script_return_code
    and ngx_http_send_response answer it."""
    assert request.vars is not None
    if code == 444:   # nginx: close without a response
        request.vars.status = 444
        client.finish(request, plan, keepalive=False)
        return
    if request.expect_continue and (code < 400 or text is not None):
        # nginx answers these through ngx_http_send_response, whose discard says it first
        client.write(CONTINUE)
    broken = client.discard_body(request)
    if broken is not None:       # nginx: the return's answer becomes the body's verdict
        answer_error(client, request, broken.status, plan, keepalive=False)
        return
    location = None
    if code in REDIRECTS and request.carried:    # a new redirect clears the old one's Location
        request.carried = tuple((name, value) for name, value in request.carried
                                if name.lower() != b"location")
    if code in REDIRECTS and text is not None:
        location = own_location(text, request.vars, plan.replies)
    if code in REDIRECTS or (code >= 400 and text is None):
        # nginx's special response: error_page applies, and a redirect's Location stays with its page
        kept = request.carried
        if location is not None:
            request.carried = (*kept, (b"Location", location))
        if error_page(client, request, code, plan):
            return
        request.carried = kept
        status = code
    else:                        # an error page's own answer keeps the error's status
        status = request.status_override or code
    content_type: bytes | None
    if code in REDIRECTS:
        body, content_type = error_body(code), b"text/html"
    elif text is not None:
        body, content_type = text, b"text/plain"
    elif code >= 400:
        body, content_type = error_body(code), b"text/html"
    else:
        body, content_type = b"", b"text/plain"
    if request.carried and any(name.lower() == b"content-type" for name, _ in request.carried):
        content_type = None      # an X-Accel-Redirect's answer keeps the upstream's
    keepalive = client.keepalive_after(request)
    head = request.method == b"HEAD"
    if request.http09:
        data, keepalive = body, False
    else:
        extra = _added(request, status, plan)
        chunked = _chunked(request, status, plan)
        gzipped = False
        if plan.gzip is not None:
            body, extra, keepalive, gzipped, chunked = _gzip(request, plan, status, content_type, body,
                                                             extra, keepalive, chunked)
        data = simple_response(status, server=SERVER, date=client.site.date(), body=body,
                               content_type=content_type, keepalive=keepalive, head=head, location=location,
                               extra=extra, chunked=chunked, gzipped=gzipped,
                               keepalive_line=plan.keepalive_line)
        data = _sent(request, status, plan, data, chunked)
    request.vars.status = status
    request.vars.body_bytes_sent = 0 if head else len(body)
    client.write(data)
    client.finish(request, plan, keepalive=keepalive)


def _added(request: Request, status: int, plan: Plan | None) -> tuple[tuple[bytes, bytes], ...]:
    """The location's (or, for a server-level `return`, the server's) add_header lines for this status
    (sheer/core/http/add_header.py)."""
    if plan is None or not plan.add_headers or request.vars is None:
        return request.carried
    return (*request.carried, *added(plan.add_headers, status, request.vars)[0])


def _chunked(request: Request, status: int, plan: Plan | None) -> bool:
    """Whether the answer is chunked for add_trailer's lines (sheer/core/http/add_header.py)."""
    if plan is None or not plan.replies.add_trailers:
        return False
    replies = plan.replies
    return chunked_with_trailers(replies.add_trailers, replies.chunked, status, request.method,
                                 request.version)


def _sent(request: Request, status: int, plan: Plan | None, data: bytes, chunked: bool) -> bytes:
    """The answer as it goes: its head noted for $sent_http_*, and the last chunk (with add_trailer's
    lines, if any) after a chunked one."""
    variables = request.vars
    if variables is None:
        return data
    variables.sent = data
    if chunked and plan is not None:
        data += last_chunk(plan.replies.add_trailers, status, variables)
    return data


def _gzip(request: Request, plan: Plan, status: int, content_type: bytes | None, body: bytes,
          extra: tuple[tuple[bytes, bytes], ...], keepalive: bool, chunked: bool
          ) -> tuple[bytes, tuple[tuple[bytes, bytes], ...], bool, bool, bool]:
    """The answer's body through the location's `gzip`: (body, extra headers, keepalive, gzipped,
    chunked). Compressed, it has no length: chunked to an HTTP/1.1 client (unless
    `chunked_transfer_encoding off`), else read to the connection's end."""
    gzip = plan.gzip
    if not body or request.vars is None or gzip is None:
        return body, extra, keepalive, False, chunked
    lines = list(extra)
    packed, deflater = gzip_answer(gzip, request, status, content_type, body, lines)
    if deflater is None:
        return body, tuple(lines), keepalive, False, chunked        # Vary may have come
    request.vars.deflater = deflater
    head = request.method == b"HEAD"
    chunked = chunked or (request.version == "HTTP/1.1" and not head and plan.replies.chunked)
    keepalive = keepalive and (chunked or head)
    return packed, tuple(lines), keepalive, True, chunked
