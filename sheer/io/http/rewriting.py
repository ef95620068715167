"""The rewrite module's phases on a request (nginx's server rewrite, rewrite and post-rewrite phases):
the server's script before a location is chosen, the location's after, a changed URI looked up again
(at most 10 times: then nginx's 500 "rewrite or internal redirection cycle"). Nothing here runs for a
server or a location without `rewrite`, `if` or `set`."""

from __future__ import annotations

import os
import stat
from urllib.parse import quote

from sheer.config.model import Location
from sheer.config.script import FileTest, Script
from sheer.core.http.rewrite import MAX_URI_CHANGES, Outcome, Result, run
from sheer.core.http.rewrite import Request as State
from sheer.core.http.routing import VirtualHost
from sheer.core.http.variables import RequestVariables
from sheer.io.http.logline import Client, client_error
from sheer.io.http.request import Request
from sheer.io.http.site import Plan

_SAFE = "/:@!$&'()*+,;=-._~"     # what nginx's NGX_ESCAPE_URI leaves as it is


def file_test(test: FileTest, path: str) -> bool:
    """`if (-f path)` and its kin, as nginx's open_file_cache answers them (symlinks followed)."""
    try:
        found = os.stat(path)
    except (OSError, ValueError):
        return False
    if test == "-f":
        return stat.S_ISREG(found.st_mode)
    if test == "-d":
        return stat.S_ISDIR(found.st_mode)
    if test == "-x":
        return bool(found.st_mode & stat.S_IXUSR)
    return True


def captured(variables: RequestVariables, location: Location, uri: str) -> None:
    """The captures of the regex location a URI matched (nginx keeps them for the location's
    directives: `proxy_pass http://u/$1`)."""
    assert location.regex is not None
    match = location.regex.search(uri)
    if match is not None:
        variables.captured(match)


def auto_redirect(request: Request, location: Location) -> Result:
    """nginx's 301 to a proxy_pass location's name for the URI without its final "/" (its args kept); the
    request waits in request.answer with it."""
    assert request.vars is not None
    args = request.vars.args
    target = quote(location.path.encode("latin-1", "replace"), safe=_SAFE)
    request.answer = Result(Outcome.REDIRECT, 301, f"{target}?{args}" if args else target)
    return request.answer


def state_of(request: Request) -> State:
    state = request.rewritten
    if state is None:
        assert request.vars is not None
        state = request.rewritten = State(request.vars)
    return state


def server_phase(client: Client, request: Request, vhost: VirtualHost) -> None:
    """The server level's script (before the location is found); an answer it gives waits in
    request.answer for the request's turn."""
    script = vhost.server.rewrite
    assert script is not None
    result = _run(client, request, script)
    if result.outcome in (Outcome.REDIRECT, Outcome.RETURN, Outcome.ERROR):
        request.answer = result
    else:
        state_of(request).uri_changed = False


def location_phase(client: Client, request: Request, plan: Plan) -> Plan | Result:
    """The location's script, and the location the request ends in (ngx_http_core_post_rewrite_phase);
    or what to answer (a return, a redirect, a 500)."""
    assert request.vars is not None and request.vhost is not None
    state = state_of(request)
    while True:
        location = plan.location
        if location is None or location.rewrite is None:
            return plan
        result = _run(client, request, location.rewrite)
        if state.config >= 0:
            if result.outcome is not Outcome.RELOCATE:   # the `if` that held last: its configuration serves
                plan = request.plan = client.site.plan(location.if_configs[state.config], request.method)
                if (state.handler and result.outcome is Outcome.DONE and plan.location is not None
                        and plan.location.proxy_pass is None):
                    # an earlier `if`'s proxy_pass handler, with a configuration that has none: nginx's 500
                    result = Result(Outcome.ERROR, 500, "no upstream configuration")
            state.config, state.handler = -1, False
        if result.outcome is not Outcome.RELOCATE:
            return result if result.outcome is not Outcome.DONE else plan
        state.changes -= 1
        if state.changes <= 0:
            uri = request.vars.uri
            return Result(Outcome.ERROR, 500,
                          f'rewrite or internal redirection cycle while processing "{uri}"')
        state.uri_changed, state.valid_location = False, True
        found, auto = request.vhost.locations.search(request.vars.uri)   # `internal` ones too, as nginx
        if found is not None and found.regex is not None and found.regex.groups:
            captured(request.vars, found, request.vars.uri)
        site = client.site
        plan = (site.plan(found, request.method) if found is not None
                else site.refusal_plans[id(request.vhost.server)])
        request.plan = plan
        if auto and found is not None:
            request.answer = None
            return auto_redirect(request, found)


def _run(client: Client, request: Request, script: Script) -> Result:
    variables = request.vars
    assert variables is not None
    state = state_of(request)
    log = None
    if script.log:      # rewrite_log: nginx's notice lines
        log = lambda line: client_error(client, request, "notice", line, None)
    result = run(script, variables, state, file_test, log)
    if not state.unparsed:        # the URI sent upstream is made again from $uri and $args
        target = quote(variables.uri.encode("latin-1", "replace"), safe=_SAFE)
        request.raw_uri = f"{target}?{variables.args}" if variables.args else target
    return result


__all__ = ["MAX_URI_CHANGES", "auto_redirect", "file_test", "location_phase", "server_phase"]
