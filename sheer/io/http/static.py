"""Files from `root` or `alias`, as nginx's content phase serves them: try_files, then the index module
for a URI ending in "/", else the static module; then the filters a file's response goes through
(not_modified, the headers filter's `expires` and `add_header`, range) and sendfile.

What is decided here is I/O (stat, open, internal redirects); the rules are in core: the path
(sheer.core.http.files), the conditions (sheer.core.http.conditional), the ranges
(sheer.core.http.ranges)."""

from __future__ import annotations

import errno
import os
import stat
import time

from sheer.config.model import Location
from sheer.config.static import REGEX_ALIAS, Static
from sheer.core.http.add_header import SUCCESS, added
from sheer.core.http.conditional import (
    etag,
    expires_headers,
    http_time,
    if_range_holds,
    parse_http_time,
    precondition,
)
from sheer.core.http.files import Mapped, directory_location, escapes_root, map_uri, try_path
from sheer.core.http.headers import reason
from sheer.core.http.pages import absolute_location
from sheer.core.http.ranges import Verdict, content_range, multipart, parse_range
from sheer.core.variables import VariableSource, render
from sheer.io.http.answers import answer_error, client_error
from sheer.io.http.client import ClientConnection
from sheer.io.http.request import Request
from sheer.io.http.sendfile import FileSender, Span
from sheer.io.http.site import SERVER, Plan

MAX_REDIRECTS = 10      # nginx's NGX_HTTP_MAX_URI_CHANGES
_CONDITIONAL = ("if-modified-since", "if-none-match", "if-match", "if-unmodified-since", "range", "if-range")


class _Captures:
    """The request's variables, with $1..$9 from the location's regex."""

    __slots__ = ("groups", "source")

    def __init__(self, source: VariableSource, groups: tuple[str, ...]) -> None:
        self.source = source
        self.groups = groups

    def variable(self, name: str) -> str:
        if name.isdigit():
            number = int(name)
            return self.groups[number] if number < len(self.groups) else ""
        return self.source.variable(name)


async def serve(client: ClientConnection, request: Request, plan: Plan) -> None:
    static = plan.static
    variables = request.vars
    assert static is not None and variables is not None
    source: VariableSource = variables
    if static.regex is not None:
        found = static.regex.search(variables.uri)
        groups = (found.group(0), *(g or "" for g in found.groups())) if found is not None else ()
        source = _Captures(variables, groups)
    root = render(static.root, source)
    if not root.startswith("/"):
        root = static.prefix + root
    add_uri = False
    if static.try_files is not None:
        tried = _try_files(client, request, plan, static, root, source)
        if tried is None:
            return              # answered, or internally redirected
        add_uri = tried
    if request.method not in (b"GET", b"HEAD", b"POST"):
        answer_error(client, request, 405, plan)
        return
    uri = variables.uri
    if uri.endswith("/"):
        _index(client, request, plan, static, root, source)
        return
    mapped = map_uri(root, static.alias, uri, add_uri)
    await _file(client, request, plan, static, mapped)


def _stat(path: str, static: Static) -> os.stat_result | OSError:
    try:
        if static.disable_symlinks and os.path.realpath(path) != os.path.normpath(path):
            return OSError(errno.ELOOP, os.strerror(errno.ELOOP))
        return os.stat(path)
    except OSError as exc:
        return exc


def _try_files(client: ClientConnection, request: Request, plan: Plan, static: Static, root: str,
               source: VariableSource) -> bool | None:
    """ngx_http_try_files_handler: True/False (the URI to serve is set; True: under a regex alias)
    when a name was found, None when the request was answered or redirected."""
    tried = static.try_files
    variables = request.vars
    assert tried is not None and variables is not None
    for template, test_dir in tried.names:
        name = render(template, source)
        mapped = try_path(root, static.alias, variables.uri, name, template.is_literal)
        if escapes_root(mapped):
            continue
        found = _stat(mapped.path, static)
        if isinstance(found, OSError):
            if found.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
                _log(client, request, plan, "crit", f'stat() "{mapped.path}" failed', found)
            continue
        if stat.S_ISDIR(found.st_mode) != test_dir:
            continue
        added_part = mapped.path[mapped.root_length:]
        if static.alias == 0:
            variables.uri = added_part
        elif static.alias == REGEX_ALIAS:
            if not test_dir:
                variables.uri = added_part
                return True
        else:
            variables.uri = variables.uri[:static.alias] + added_part
        return False
    if tried.code is not None:
        answer_error(client, request, tried.code, plan)
        return None
    assert tried.fallback is not None
    target = render(tried.fallback, source)
    if target.startswith("@"):
        named(client, request, target)
    else:
        path, mark, args = target.partition("?")
        internal_redirect(client, request, path, args if mark else variables.args)
    return None


def _index(client: ClientConnection, request: Request, plan: Plan, static: Static, root: str,
           source: VariableSource) -> None:
    """ngx_http_index_handler, then the core content phase's 403 for a directory without an index."""
    variables = request.vars
    assert variables is not None
    uri = variables.uri
    mapped = map_uri(root, static.alias, uri)
    if escapes_root(mapped):
        answer_error(client, request, 404, plan)
        return
    dir_tested = False
    for template in static.index:
        name = render(template, source)
        if name.startswith("/"):
            internal_redirect(client, request, name, variables.args)
            return
        path = mapped.path + name
        found = _stat(path, static)
        if not isinstance(found, OSError):
            internal_redirect(client, request, uri + name, variables.args)
            return
        code = found.errno
        if code in (errno.ELOOP, errno.EMLINK):
            answer_error(client, request, 403, plan)
            return
        if code in (errno.ENOTDIR, errno.ENAMETOOLONG, errno.EACCES):
            _index_error(client, request, plan, static, path, found)
            return
        if not dir_tested:
            directory = mapped.path.rstrip("/") or "/"
            checked = _stat(directory, static)
            if isinstance(checked, OSError):
                if checked.errno == errno.ENOENT:
                    _index_error(client, request, plan, static, directory, checked)
                    return
                if checked.errno != errno.EACCES:
                    _log(client, request, plan, "crit", f'stat() "{directory}" failed', checked)
                    answer_error(client, request, 500, plan)
                    return
            elif not stat.S_ISDIR(checked.st_mode):
                client_error(client, request, "alert", f'"{directory}" is not a directory', None)
                answer_error(client, request, 500, plan)
                return
            dir_tested = True
        if code == errno.ENOENT:
            continue
        _log(client, request, plan, "crit", f'stat() "{path}" failed', found)
        answer_error(client, request, 500, plan)
        return
    client_error(client, request, "error", f'directory index of "{mapped.path}" is forbidden', None)
    answer_error(client, request, 403, plan)


def _index_error(client: ClientConnection, request: Request, plan: Plan, static: Static, path: str,
                 error: OSError) -> None:
    if error.errno == errno.EACCES:
        _log(client, request, plan, "error", f'"{path}" is forbidden', error)
        answer_error(client, request, 403, plan)
        return
    if static.log_not_found:
        _log(client, request, plan, "error", f'"{path}" is not found', error)
    answer_error(client, request, 404, plan)


def _log(client: ClientConnection, request: Request, plan: Plan, level: str, text: str,
         error: OSError) -> None:
    """nginx's `open() "/path" failed (2: No such file or directory), client: ...`."""
    client_error(client, request, level, f"{text} ({error.errno}: {error.strerror})", None)


def internal_redirect(client: ClientConnection, request: Request, uri: str, args: str) -> None:
    """ngx_http_internal_redirect: the request starts over at location search with `uri`."""
    variables = request.vars
    assert variables is not None
    request.redirects += 1
    if request.redirects > MAX_REDIRECTS:
        client_error(client, request, "error",
                     f'rewrite or internal redirection cycle while internally redirecting to "{uri}"', None)
        answer_error(client, request, 500, request.plan)
        return
    variables.uri, variables.args = uri, args
    vhost = request.vhost
    assert vhost is not None
    location = vhost.locations.match(uri)
    site = client.site
    plan = site.plan(location) if location is not None else site.refusal_plans[id(vhost.server)]
    request.plan = plan
    client.dispatch(request, plan)


def named(client: ClientConnection, request: Request, name: str) -> None:
    vhost = request.vhost
    assert vhost is not None
    found: Location | None = next((loc for loc in vhost.server.locations
                                   if loc.modifier == "@" and loc.path == name), None)
    if found is None:
        client_error(client, request, "error", f'could not find named location "{name}"', None)
        answer_error(client, request, 500, request.plan)
        return
    request.plan = client.site.plan(found)
    client.dispatch(request, request.plan)


async def _file(client: ClientConnection, request: Request, plan: Plan, static: Static,
                mapped: Mapped) -> None:
    """ngx_http_static_handler and the filters after it."""
    variables = request.vars
    assert variables is not None
    if escapes_root(mapped):
        client_error(client, request, "error", f'"{mapped.path}" is outside the root', None)
        answer_error(client, request, 404, plan)
        return
    path = mapped.path
    try:
        if static.disable_symlinks and os.path.realpath(path) != os.path.normpath(path):
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        code = exc.errno
        if code in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
            if static.log_not_found:
                _log(client, request, plan, "error", f'open() "{path}" failed', exc)
            answer_error(client, request, 404, plan)
        elif code in (errno.EACCES, errno.ELOOP, errno.EMLINK):
            _log(client, request, plan, "error", f'open() "{path}" failed', exc)
            answer_error(client, request, 403, plan)
        else:
            _log(client, request, plan, "crit", f'open() "{path}" failed', exc)
            answer_error(client, request, 500, plan)
        return
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            location = directory_location(variables.uri, variables.args)
            _redirect(client, request, plan, location)
            return
        if not stat.S_ISREG(info.st_mode):
            client_error(client, request, "crit", f'"{path}" is not a regular file', None)
            answer_error(client, request, 404, plan)
            return
        if request.method == b"POST":
            answer_error(client, request, 405, plan)
            return
        broken = client.discard_body(request)
        if broken is not None:
            answer_error(client, request, broken.status, plan, keepalive=False)
            return
        await _respond(client, request, plan, static, fd, info)
    finally:
        os.close(fd)


def _redirect(client: ClientConnection, request: Request, plan: Plan, location: str) -> None:
    """The 301 for a directory: nginx's special response page, with an absolute Location."""
    variables = request.vars
    assert variables is not None
    where = absolute_location(location.encode("latin-1", "replace"), variables.variable("host"),
                              variables.variable("server_port"))
    request.headers_out = ((b"Location", where),)
    answer_error(client, request, 301, plan)


async def _respond(client: ClientConnection, request: Request, plan: Plan, static: Static, fd: int,
                   info: os.stat_result) -> None:
    variables = request.vars
    assert variables is not None
    size = info.st_size
    mtime = int(info.st_mtime)
    tag = etag(mtime, size) if static.etag else None
    headers = {name: variables.header(name) for name in _CONDITIONAL if variables.header(name)}
    status = request.status_override or 200
    if status == 200:
        verdict = precondition(headers, mtime, tag, static.if_modified_since)
        if verdict == 412:
            answer_error(client, request, 412, plan)
            return
        status = verdict
    # the headers filter: expires, then add_header (which may replace Last-Modified and ETag)
    last_modified: int | None = mtime
    extra: list[tuple[bytes, bytes]] = []
    if static.expires is not None and status in SUCCESS:
        value = render(static.expires.value, variables) if static.expires.value is not None else None
        extra += expires_headers(static.expires, value, mtime, time.time())
    replaced: frozenset[bytes] = frozenset()
    if plan.add_headers:
        lines, replaced = added(plan.add_headers, status, variables)
        extra += lines
        for name, value in lines:
            if name.lower() == b"last-modified":
                last_modified = parse_http_time(value.decode("latin-1"))
            elif name.lower() == b"etag":
                tag = value.decode("latin-1")
    if b"last-modified" in replaced and not any(n.lower() == b"last-modified" for n, _ in extra):
        last_modified = None
    if b"etag" in replaced and not any(n.lower() == b"etag" for n, _ in extra):
        tag = None
    own: list[tuple[bytes, bytes]] = []
    # nginx's header filter: no Last-Modified but with 200, 206 and 304 (an error page's file has none)
    if b"last-modified" not in replaced and status in (200, 304):
        own.append((b"Last-Modified", http_time(mtime)))
    keepalive = client.keepalive_after(request)
    head_only = request.method == b"HEAD"
    content_type = static.type_of(variables.uri).encode("latin-1")
    if status == 304:
        if tag is not None and b"etag" not in replaced:
            own.append((b"ETag", tag.encode("latin-1")))
        head = _head(304, client, None, None, own, extra, keepalive)
        _finish(client, request, plan, head, 304, 0, keepalive)
        return
    tail: list[tuple[bytes, bytes]] = []
    if tag is not None and b"etag" not in replaced:
        tail.append((b"ETag", tag.encode()))
    pieces: list[bytes | Span] = [(0, size)] if size else []
    length = size
    range_header = headers.get("range")
    if status == 200 and static.max_ranges != 0:
        spans = Verdict.FULL
        if range_header is not None and if_range_holds(headers.get("if-range"), tag, last_modified):
            spans = parse_range(range_header, size, static.max_ranges)
        if spans is Verdict.UNSATISFIABLE:
            request.headers_out = ((b"Content-Range", b"bytes */%d" % size),)
            answer_error(client, request, 416, plan)
            return
        if isinstance(spans, list):
            status = 206
            if len(spans) == 1:
                own.append((b"Content-Range", content_range(spans[0], size)))
                pieces, length = [spans[0]], spans[0][1] - spans[0][0]
            else:
                boundary = int.from_bytes(os.urandom(8), "big") % 10**20
                multi_type, pieces, length = multipart(spans, size, content_type.decode("latin-1"), boundary)
                content_type = multi_type
        else:
            tail.append((b"Accept-Ranges", b"bytes"))
    head = _head(status, client, content_type, length, own, tail + extra, keepalive)
    if head_only or request.http09:
        if request.http09:
            head = b""
        if head_only:
            _finish(client, request, plan, head, status, 0, keepalive)
            return
    sender = FileSender(client, fd)
    variables.status = status
    ok = await sender.send(head, pieces, length)
    variables.bytes_sent += len(head) + sender.sent
    variables.body_bytes_sent = sender.sent
    client.finish(request, plan, keepalive=keepalive and ok and not request.http09)


def _head(status: int, client: ClientConnection, content_type: bytes | None, length: int | None,
          own: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]], keepalive: bool) -> bytes:
    """nginx's order: Server, Date, Content-Type, Content-Length, Last-Modified, Connection, then
    the header list (ETag, Accept-Ranges, expires, add_header)."""
    lines = [b"HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\n" % (status, reason(status), SERVER,
                                                              client.site.date())]
    if content_type is not None:
        lines.append(b"Content-Type: %s\r\n" % content_type)
    if length is not None:
        lines.append(b"Content-Length: %d\r\n" % length)
    for name, value in own:
        lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(b"Connection: keep-alive\r\n" if keepalive else b"Connection: close\r\n")
    for name, value in extra:
        lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(b"\r\n")
    return b"".join(lines)


def _finish(client: ClientConnection, request: Request, plan: Plan, head: bytes, status: int, sent: int,
            keepalive: bool) -> None:
    variables = request.vars
    assert variables is not None
    variables.status = status
    variables.body_bytes_sent = sent
    client.write(head)
    client.finish(request, plan, keepalive=keepalive)


