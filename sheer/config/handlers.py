"""A location's status handler (stub_status, api, prometheus, dashboard: sheer.io.http.status), read from
its block."""

from __future__ import annotations

from sheer.config.errors import ConfigError
from sheer.config.locations import location_args
from sheer.config.model import StatusHandler
from sheer.config.table import HTTP_LOCATION
from sheer.config.tree import Block

HANDLERS = ("stub_status", "api", "prometheus", "dashboard")


def status_handler(block: Block) -> StatusHandler | None:
    """The location's status handler, if it names one (at most one per location)."""
    named = [kind for kind in HANDLERS if kind in block.settings]
    if not named:
        return None
    if len(named) > 1:
        raise ConfigError(f'"{named[1]}" cannot be combined with "{named[0]}" in one location',
                          block.sources[named[1]])
    kind = named[0]
    source = block.sources[kind]
    if kind == "stub_status" and block.get(kind) not in ([], ["on"]):
        raise ConfigError('invalid parameter of "stub_status"', source)
    write = bool(block.get("api")) if kind == "api" else False
    return StatusHandler(kind, write=write, source=source)  # type: ignore[arg-type]


def api_location(server: Block) -> tuple[str, bool] | None:
    """The path and `write=` of the server's `api` location, at any depth (a dashboard reads through it)."""
    for child in server.children:
        if child.context != HTTP_LOCATION:
            continue
        if "api" in child.settings:
            return location_args(child.args, child.source)[1], bool(child.get("api"))
        inner = api_location(child)
        if inner is not None:
            return inner
    return None
