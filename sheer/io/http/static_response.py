"""A file's response, as nginx's static handler makes it (open, 301 for a directory, 405 for POST) and
the filters it goes through: not_modified (412, 304), the headers filter (`expires`, `add_header`, which
may replace Last-Modified and ETag), range (206, multipart/byteranges, 416), then sendfile."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import time

from sheer.config.static import Static
from sheer.core.http.add_header import SUCCESS, added, chunked_with_trailers, last_chunk
from sheer.core.http.conditional import (
    etag,
    expires_headers,
    http_time,
    if_range_holds,
    parse_http_time,
    precondition,
)
from sheer.core.http.files import Mapped, directory_location, escapes_root
from sheer.core.http.gzip import Deflater, eligible
from sheer.core.http.headers import reason
from sheer.core.http.pages import own_location
from sheer.core.http.ranges import Verdict, content_range, multipart, parse_range
from sheer.core.rate import RateLimit
from sheer.core.variables import render
from sheer.io.http.answers import answer_error
from sheer.io.http.client import ClientConnection
from sheer.io.http.gzipping import CompressedFile, file_gzip
from sheer.io.http.logline import client_error
from sheer.io.http.request import Request
from sheer.io.http.sendfile import FileSender, Span
from sheer.io.http.site import SERVER, Plan
from sheer.io.http.throttle import response_limits

_CONDITIONAL = ("if-modified-since", "if-none-match", "if-match", "if-unmodified-since", "range", "if-range")


def log_failed(client: ClientConnection, request: Request, level: str, text: str, error: OSError) -> None:
    """nginx's `open() "/path" failed (2: No such file or directory), client: ...`."""
    client_error(client, request, level, f"{text} ({error.errno}: {error.strerror})", None)


async def send_file(client: ClientConnection, request: Request, plan: Plan, static: Static,
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
                log_failed(client, request, "error", f'open() "{path}" failed', exc)
            answer_error(client, request, 404, plan)
        elif code in (errno.EACCES, errno.ELOOP, errno.EMLINK):
            log_failed(client, request, "error", f'open() "{path}" failed', exc)
            answer_error(client, request, 403, plan)
        else:
            log_failed(client, request, "crit", f'open() "{path}" failed', exc)
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
    where = own_location(location.encode("latin-1", "replace"), variables, plan.replies)
    # a new redirect: the Location an error_page's first answer carried goes
    request.carried = tuple((name, value) for name, value in request.carried if name.lower() != b"location")
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
        for field, text in lines:
            if field.lower() == b"last-modified":
                last_modified = parse_http_time(text.decode("latin-1"))
            elif field.lower() == b"etag":
                tag = text.decode("latin-1")
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
    if tag is not None and b"etag" not in replaced:
        extra.insert(0, (b"ETag", tag.encode("latin-1")))     # the static handler's, before the filters'
    if status == 304:
        head = _head(304, client, None, None, own, extra, keepalive, plan.keepalive_line)
        _finish(client, request, plan, head, 304, 0, keepalive)
        return
    if plan.gzip is not None and eligible(plan.gzip, status, content_type, size, None):
        # the gzip filter comes before the range filter: a compressed answer is whole, with no ranges
        deflater = file_gzip(plan.gzip, request, status, own, extra)
        if deflater is not None:
            await _compressed(client, request, plan, fd, size, status, content_type, own, extra, deflater)
            return
    tail: list[tuple[bytes, bytes]] = []      # the range filter's, after the headers filter's
    pieces: list[bytes | Span] = [(0, size)] if size else []
    length = size
    range_header = headers.get("range")
    if status == 200 and static.max_ranges != 0:
        spans: list[Span] | Verdict = Verdict.FULL
        if range_header is not None and if_range_holds(headers.get("if-range"), tag, last_modified):
            spans = parse_range(range_header, size, static.max_ranges)
        if spans is Verdict.UNSATISFIABLE:
            request.headers_out = ((b"Content-Range", b"bytes */%d" % size),)
            answer_error(client, request, 416, plan)
            return
        if isinstance(spans, list):
            status = 206
            if len(spans) == 1:
                tail.append((b"Content-Range", content_range(spans[0], size)))
                pieces, length = [spans[0]], spans[0][1] - spans[0][0]
            else:
                boundary = int.from_bytes(os.urandom(8), "big") % 10**20
                multi_type, pieces, length = multipart(spans, size, content_type.decode("latin-1"), boundary)
                content_type = multi_type
        else:
            tail.append((b"Accept-Ranges", b"bytes"))
    replies = plan.replies
    chunked = chunked_with_trailers(replies.add_trailers, replies.chunked, status, request.method,
                                    request.version)
    head = _head(status, client, content_type, None if chunked else length, own, extra + tail, keepalive,
                 plan.keepalive_line, chunked)
    variables.sent = head
    if chunked:      # nginx's trailers filter runs as the file's (last) buffer passes: before it is sent
        end = last_chunk(replies.add_trailers, status, variables)
        if length:
            start, end = b"%x\r\n" % length, b"\r\n" + end
            pieces.insert(0, start)
            length += len(start)
        pieces.append(end)
        length += len(end)
    if head_only or request.http09:
        if request.http09:
            head = b""
        if head_only:
            _finish(client, request, plan, head, status, 0, keepalive)
            return
    sender = FileSender(client, fd)
    variables.status = status
    limits = _limits(client, request, plan)
    ok = await (sender.send_limited(head, pieces, limits) if limits else sender.send(head, pieces, length))
    variables.bytes_sent += len(head) + sender.sent
    variables.body_bytes_sent = sender.sent
    client.finish(request, plan, keepalive=keepalive and ok and not request.http09)


def _limits(client: ClientConnection, request: Request, plan: Plan) -> list[RateLimit]:
    """The response's limit_rate, worked out as it starts (nothing to do without one)."""
    location, variables = plan.location, request.vars
    if location is None or variables is None or not (location.limit_rate or variables.limit_rate):
        return []
    return response_limits(location, variables, asyncio.get_running_loop().time(),
                           lambda line: client_error(client, request, "error", line, None))


async def _compressed(client: ClientConnection, request: Request, plan: Plan, fd: int, size: int, status: int,
                      content_type: bytes, own: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]],
                      deflater: Deflater) -> None:
    """The file through gzip: chunked to an HTTP/1.1 client (its last chunk with add_trailer's lines),
    else until the connection closes; paced by limit_rate as any file."""
    variables = request.vars
    assert variables is not None
    head_only = request.method == b"HEAD"
    replies = plan.replies
    chunked = request.version == "HTTP/1.1" and not head_only and replies.chunked
    keepalive = (chunked or head_only) and client.keepalive_after(request)
    head = _head(status, client, content_type, None, own, extra, keepalive, plan.keepalive_line,
                 chunked)       # never HTTP/0.9 (gzip_http_version)
    variables.deflater = deflater
    variables.sent = head
    if head_only:
        _finish(client, request, plan, head, status, 0, keepalive)
        return
    variables.status = status
    trailers = replies.add_trailers and chunked_with_trailers(replies.add_trailers, replies.chunked, status,
                                                              request.method, request.version)
    end = (lambda: last_chunk(replies.add_trailers, status, variables)) if trailers else None
    sender = CompressedFile(client, fd, deflater, chunked, _limits(client, request, plan), end)
    ok = await sender.send(head, size)
    variables.bytes_sent += len(head) + sender.sent
    variables.body_bytes_sent = sender.sent
    client.finish(request, plan, keepalive=keepalive and ok)


def _head(status: int, client: ClientConnection, content_type: bytes | None, length: int | None,
          own: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]], keepalive: bool,
          keepalive_line: bytes = b"", chunked: bool = False) -> bytes:
    """nginx's order: Server, Date, Content-Type, Content-Length, Last-Modified, Transfer-Encoding,
    Connection, then the header list (ETag, Accept-Ranges, expires, add_header)."""
    lines = [b"HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\n" % (status, reason(status), SERVER,
                                                              client.site.date())]
    if content_type is not None:
        lines.append(b"Content-Type: %s\r\n" % content_type)
    if length is not None:
        lines.append(b"Content-Length: %d\r\n" % length)
    for name, value in own:
        lines.append(b"%s: %s\r\n" % (name, value))
    if chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    lines.append(b"Connection: keep-alive\r\n" + keepalive_line if keepalive else b"Connection: close\r\n")
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
    variables.sent = head      # $sent_http_*
    client.write(head)
    client.finish(request, plan, keepalive=keepalive)


