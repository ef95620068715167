"""error_page at run time, as ngx_http_send_error_page: an error sheer answers (403, 404, 413, 502,
504, `return 404`...) whose code the location's error_page lists is answered by its target instead:
a redirect for the client (302, or the `=3xx` given), or an internal redirect to a URI or a named
location, answered there with the error's code (or `=CODE`, or with `=` what that location answers).
Once per request: an error while answering an error page is answered plainly (recursive_error_pages
off, nginx's default)."""

from __future__ import annotations

from typing import Protocol
from urllib.parse import unquote

from sheer.config.error_pages import OWN_STATUS, find
from sheer.config.model import Location
from sheer.config.responses import DEFAULT_REPLIES
from sheer.core.http.add_header import added
from sheer.core.http.pages import REDIRECTS, error_body, own_location, simple_response
from sheer.core.http.variables import Connection
from sheer.core.variables import render
from sheer.io.http.body import Reader, RequestBody
from sheer.io.http.request import Request
from sheer.io.http.rewriting import auto_redirect, captured, server_phase
from sheer.io.http.site import SERVER, Plan, Site
from sheer.io.http.throttle import accel_limit_rate


class Client(Reader, Protocol):
    @property
    def site(self) -> Site: ...
    @property
    def conn(self) -> Connection | None: ...
    def keepalive_after(self, request: Request) -> bool: ...
    def write(self, data: bytes) -> None: ...
    def finish(self, request: Request, plan: Plan | None, *, keepalive: bool) -> None: ...
    def dispatch(self, request: Request, plan: Plan) -> None: ...


def error_page(client: Client, request: Request, status: int, plan: Plan | None) -> bool:
    """True when the location's error_page took the answer over."""
    location = plan.location if plan is not None else None
    vhost = request.vhost
    pages = location.error_pages if location is not None else vhost.server.error_pages if vhost else ()
    variables = request.vars
    if not pages or variables is None or request.error_paged or request.http09:
        return False
    page = find(pages, status)
    if page is None:
        return False
    request.error_paged = True
    target = render(page.target, variables)
    if page.kind == "redirect":
        code = page.overwrite if page.overwrite in REDIRECTS else 302
        keepalive = client.keepalive_after(request)
        head = request.method == b"HEAD"
        body = error_body(code)
        where = own_location(target.encode("latin-1", "replace"), variables,
                             plan.replies if plan is not None else DEFAULT_REPLIES)
        # nginx's headers filter runs on this answer too: the location's add_header lines
        extra = tuple(added(plan.add_headers, code, variables)[0]) if plan and plan.add_headers else ()
        data = simple_response(code, server=SERVER, date=client.site.date(), body=body,
                               content_type=b"text/html", keepalive=keepalive, head=head, location=where,
                               extra=extra, keepalive_line=plan.keepalive_line if plan else b"")
        client.write(data)
        variables.status, variables.sent = code, data
        variables.body_bytes_sent = 0 if head else len(body)
        client.finish(request, plan, keepalive=keepalive)
        return True
    override = status if page.overwrite is None else None if page.overwrite == OWN_STATUS else page.overwrite
    return internal_redirect(client, request, target, override)


def internal_redirect(client: Client, request: Request, target: str, override: int | None) -> bool:
    """ngx_http_internal_redirect (or ngx_http_named_location for `@name`): the request is answered by
    the location `target` leads to, asked with GET (HEAD stays HEAD), its body dropped; False when
    no location takes it."""
    vhost, variables = request.vhost, request.vars
    if vhost is None or variables is None:
        return False
    if request.method != b"HEAD":       # nginx asks the new location with GET (HEAD stays HEAD)
        request.method = variables.method = b"GET"
    found: Location | None
    if target.startswith("@"):
        found = next((loc for loc in vhost.server.locations if loc.modifier == "@" and loc.path == target),
                     None)
    else:
        path, mark, args = target.partition("?")
        variables.uri, request.raw_uri = path, target
        if mark:
            variables.args = args
        if request.rewritten is not None:      # a new URI: nginx's flags of the last one do not hold
            request.rewritten.valid_location, request.rewritten.unparsed = True, True
        if vhost.server.rewrite is not None:   # an internal redirect starts at the server rewrite phase
            server_phase(client, request, vhost)
            if request.answer is not None:
                client.dispatch(request, client.site.refusal_plans[id(vhost.server)])
                return True
        found, auto = vhost.locations.search(variables.uri)
        if found is not None and found.regex is not None and found.regex.groups:
            captured(variables, found, variables.uri)
        if auto and found is not None:
            auto_redirect(request, found)
    if found is None:
        return False
    request.status_override = override
    request.internal = True
    if request.body.expected:           # without the body: what is left of it is read and dropped
        if not request.body.done:       # (a complete one stays for $request_body)
            request.body.detach()
        request.body = RequestBody(client, None, False)
    new_plan = request.plan = client.site.plan(found, request.method)
    client.dispatch(request, new_plan)
    return True


class Proxying(Client, Protocol):
    def respond_error(self, request: Request, status: int, plan: Plan | None, *,
                      keepalive: bool = True) -> None: ...


# what an X-Accel-Redirect answer keeps of the upstream's headers (ngx_http_upstream_headers_in's
# `redirect` ones)
_ACCEL_KEPT = frozenset({b"content-type", b"set-cookie", b"content-disposition", b"cache-control", b"expires",
                         b"accept-ranges"})


def accel_redirect(client: Proxying, request: Request, headers: list[tuple[bytes, bytes]]) -> bool:
    """The upstream's `X-Accel-Redirect: /uri` (or `@name`): its answer is dropped and the request
    redirected internally there (nginx's ngx_http_upstream_process_headers), a few of its headers
    kept; a URI leading out with `..` is nginx's 404. False when the answer has none, or when
    `proxy_ignore_headers X-Accel-Redirect` says so (the answer is passed on, the header hidden)."""
    value = next((value for name, value in headers if name.lower() == b"x-accel-redirect"), None)
    location = request.plan.location if request.plan is not None else None
    if value is None or (location is not None and "x-accel-redirect" in location.proxy_ignore_headers):
        return False
    target = value.decode("latin-1")
    rate = accel_limit_rate(headers)        # X-Accel-Limit-Rate holds for the redirected answer too
    ignored = location is not None and "x-accel-limit-rate" in location.proxy_ignore_headers
    if rate is not None and rate.isdigit() and request.vars is not None and not ignored:
        request.vars.limit_rate = int(rate)
    request.carried = tuple((name, v) for name, v in headers if name.lower() in _ACCEL_KEPT)
    if not target.startswith("@"):
        path, mark, args = target.partition("?")
        path = unquote(path, encoding="latin-1")
        if "\0" in path or ".." in path.split("/"):
            request.carried = ()
            client.respond_error(request, 404, request.plan)
            return True
        target = path + mark + args
    if not internal_redirect(client, request, target, None):
        request.carried = ()
        client.respond_error(request, 404, request.plan)
    return True


def intercepted(client: Proxying, request: Request, status: int, headers: list[tuple[bytes, bytes]]) -> bool:
    """`proxy_intercept_errors on` (ngx_http_upstream_intercept_errors): an upstream's answer of 300 or
    more that the location's error_page lists is answered by that page instead; a 401's
    WWW-Authenticate lines go with it."""
    location = request.plan.location if request.plan is not None else None
    if status < 300 or location is None or request.error_paged or find(location.error_pages, status) is None:
        return False
    if status == 401:
        request.carried = tuple((name, value) for name, value in headers
                                if name.lower() == b"www-authenticate")
    client.respond_error(request, status, request.plan)
    return True
