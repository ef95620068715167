"""Builder steps for active health checks: `match` blocks, `health_check` resolution, and the DSR rule."""

from __future__ import annotations

from dataclasses import replace

from sheer.config.errors import ConfigError, Source
from sheer.config.health import HealthCheck, HttpMatch, StreamMatch
from sheer.config.model import StreamServer
from sheer.config.tree import Block


def stream_matches(block: Block) -> dict[str, StreamMatch]:
    found: dict[str, StreamMatch] = {}
    for child in block.children:
        if child.context != "stream.match":
            continue
        name = _unique(child, found)
        found[name] = StreamMatch(name, child.get("send", b""), child.get("expect"), child.source)
    return found


def http_matches(block: Block) -> dict[str, HttpMatch]:
    found: dict[str, HttpMatch] = {}
    for child in block.children:
        if child.context != "http.match":
            continue
        name = _unique(child, found)
        found[name] = HttpMatch(
            name,
            status=tuple(rule for rule, _ in child.get("status", [])),
            headers=tuple(rule for rule, _ in child.get("header", [])),
            body=child.get("body"),
            source=child.source,
        )
    return found


def _unique(child: Block, found: dict[str, StreamMatch] | dict[str, HttpMatch]) -> str:
    name = child.args[0]
    if name in found:
        raise ConfigError(f'duplicate match "{name}"', child.source)
    return name


def resolve(check: HealthCheck | None, matches: dict[str, StreamMatch] | dict[str, HttpMatch],
            timeout: float, connect_timeout: float) -> HealthCheck | None:
    """Attach the named match block and the timeouts the check inherits."""
    if check is None:
        return None
    match: StreamMatch | HttpMatch | None = None
    if check.match_name is not None:
        match = matches.get(check.match_name)
        if match is None:
            raise ConfigError(f'match "{check.match_name}" not found', check.source)
    return replace(check, match=match, timeout=timeout, connect_timeout=connect_timeout)


def check_dsr_is_checked(servers: tuple[StreamServer, ...]) -> None:
    """DSR hides every reply from sheer: passive checks see nothing, so a dead upstream would get
    its share of the traffic forever. `sheer -t` refuses that unless the config says it knowingly."""
    checked = {id(server.upstream) for server in servers if server.health_check is not None}
    for server in servers:
        if not server.dsr or server.dsr_without_health_check or id(server.upstream) in checked:
            continue
        where: Source | None = server.proxy_bind.source if server.proxy_bind else server.source
        raise ConfigError(
            "direct server return (proxy_responses 0) without an active health check: sheer never sees "
            "the replies, so a dead upstream would keep getting its share of the queries; add "
            '"health_check udp;" (or "health_check match=<name> udp;") to this server, or write '
            '"dsr_without_health_check on;" to run it unchecked knowingly', where)
