"""Files from `root` or `alias`, as nginx's content phase serves them: try_files, then the index module
for a URI ending in "/", else the static module (sheer.io.http.static_response: the file's response).

What is decided here is I/O (stat, open, internal redirects); the rules are in core: the path
(sheer.core.http.files), the conditions (sheer.core.http.conditional), the ranges
(sheer.core.http.ranges)."""

from __future__ import annotations

import errno
import os
import stat

from sheer.config.model import Location
from sheer.config.static import REGEX_ALIAS, Static
from sheer.core.http.files import escape_uri, escapes_root, map_uri, try_path
from sheer.core.variables import VariableSource, render
from sheer.io.http.answers import answer_error
from sheer.io.http.client import ClientConnection
from sheer.io.http.logline import client_error
from sheer.io.http.request import Request
from sheer.io.http.rewriting import auto_redirect
from sheer.io.http.site import Plan
from sheer.io.http.static_response import log_failed, send_file

MAX_REDIRECTS = 10      # nginx's NGX_HTTP_MAX_URI_CHANGES


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
    await send_file(client, request, plan, static, mapped)


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
                log_failed(client, request, "crit", f'stat() "{mapped.path}" failed', found)
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
                    log_failed(client, request, "crit", f'stat() "{directory}" failed', checked)
                    answer_error(client, request, 500, plan)
                    return
            elif not stat.S_ISDIR(checked.st_mode):
                client_error(client, request, "alert", f'"{directory}" is not a directory', None)
                answer_error(client, request, 500, plan)
                return
            dir_tested = True
        if code == errno.ENOENT:
            continue
        log_failed(client, request, "crit", f'stat() "{path}" failed', found)
        answer_error(client, request, 500, plan)
        return
    client_error(client, request, "error", f'directory index of "{mapped.path}" is forbidden', None)
    answer_error(client, request, 403, plan)


def _index_error(client: ClientConnection, request: Request, plan: Plan, static: Static, path: str,
                 error: OSError) -> None:
    if error.errno == errno.EACCES:
        log_failed(client, request, "error", f'"{path}" is forbidden', error)
        answer_error(client, request, 403, plan)
        return
    if static.log_not_found:
        log_failed(client, request, "error", f'"{path}" is not found', error)
    answer_error(client, request, 404, plan)


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
    # what proxy_pass without a URI part sends: the new URI, not the client's (nginx's valid_unparsed_uri)
    request.raw_uri = escape_uri(uri) + (f"?{args}" if args else "")
    vhost = request.vhost
    assert vhost is not None
    location, auto = vhost.locations.search(uri)
    request.internal = True
    if auto and location is not None:
        auto_redirect(request, location)
    site = client.site
    plan = (site.plan(location, request.method) if location is not None
            else site.refusal_plans[id(vhost.server)])
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
    request.plan = client.site.plan(found, request.method)
    client.dispatch(request, request.plan)
