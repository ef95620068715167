"""nginx's error log line about a request: `MESSAGE while ACTION, client: A, server: S, request: "R",
host: "H"`."""

from __future__ import annotations

import os
from typing import Protocol

from sheer.core.balancers import Peer
from sheer.core.http.request_head import log_text
from sheer.core.http.variables import Connection, RequestVariables
from sheer.io.http.request import Request
from sheer.io.http.site import Plan, Site


class Client(Protocol):
    @property
    def conn(self) -> Connection | None: ...
    @property
    def site(self) -> Site: ...


def client_error(client: Client, request: Request | None, level: str, message: str,
                 action: str | None) -> None:
    """nginx's line about a client's fault:
    `MESSAGE while ACTION, client: A, server: S, request: "R", host: "H"`."""
    plan = request.plan if request is not None and request.plan is not None else client.site.default_plan
    log = plan.error_log
    if not log.enabled(level):
        return
    conn = client.conn
    assert conn is not None
    line = message + (f" while {action}" if action else "") + f", client: {conn.remote_addr}"
    variables = request.vars if request is not None else None
    if variables is None:
        line += f", server: {conn.server_addr}:{conn.server_port}"
    else:
        line += f", server: {variables.server_name}"
        text = variables.variable("request")
        if text:
            line += f', request: "{log_text(text.encode("latin-1"))}"'
        host = variables.header("host")
        if host:
            line += f', host: "{log_text(host.encode("latin-1"))}"'
    log.log(level, line)


__all__ = ["client_error"]


def upstream_error(plan: Plan, v: RequestVariables, uri: str, level: str, message: str, peer: Peer | None,
                   hint: str = "") -> None:
    """nginx's line about a proxied request: `MESSAGE, client: A, server: S, request: "R",
    upstream: "http://PEER/URI", host: "H"`."""
    log = plan.error_log
    if not log.enabled(level):
        return
    line = (f'{message}, client: {v.conn.remote_addr}, server: {v.server_name}, '
            f'request: "{v.variable("request")}"')
    if peer is not None:
        # nginx puts a colon between a unix-domain socket's path and the URI, as proxy_pass writes it
        joint = ":" if peer.server.unix else ""
        line += f', upstream: "{"https" if plan.tls else "http"}://{peer.name}{joint}{uri}"'
    host = v.header("host")
    if host:
        line += f', host: "{host}"'
    log.log(level, line + hint)


def errno_text(exc: OSError) -> str:
    """nginx's `(111: Connection refused)`; asyncio's messages carry the address instead."""
    return f"{exc.errno}: {os.strerror(exc.errno)}" if exc.errno else str(exc)
