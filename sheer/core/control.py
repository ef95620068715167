"""What the API may change about an upstream server (nginx Plus's PATCH of `down`, `drain`,
`weight`), how a change reaches a balancer, and what state the API reports for a server.

The changes live in the control board (sheer.runtime.shared), one row per server; a balancer
holds an `UpstreamOverrides` and re-reads its rows only when the board's version moved.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from sheer.config.model import Upstream, UpstreamServer
from sheer.core.health import Health

UNSET, FALSE, TRUE = 0, 1, 2
MAX_WEIGHT = 1_000_000


class ControlBoard(Protocol):
    @property
    def version(self) -> int: ...

    def overrides(self, row: int) -> tuple[int, int, int]: ...


def flag(value: int, configured: bool) -> bool:
    return configured if value == UNSET else value == TRUE


class UpstreamOverrides:
    """The servers of one upstream block with the API's changes applied (what balancers pick from):
    a drained server takes no new requests, so for picking it is down."""

    __slots__ = ("board", "rows", "upstream")

    def __init__(self, board: ControlBoard, upstream: Upstream, rows: tuple[int, ...]) -> None:
        self.board = board
        self.upstream = upstream
        self.rows = rows

    @property
    def version(self) -> int:
        return self.board.version

    def servers(self) -> tuple[UpstreamServer, ...]:
        out = []
        for server, row in zip(self.upstream.servers, self.rows, strict=True):
            down, drain, weight = self.board.overrides(row)
            effective = flag(down, server.down) or flag(drain, False)
            if effective != server.down or (weight and weight != server.weight):
                server = replace(server, down=effective, weight=weight or server.weight)
            out.append(server)
        return tuple(out)


def peer_state(server: UpstreamServer, overrides: tuple[int, int, int], health: Health | None,
               unavailable: bool) -> str:
    """nginx Plus's `state`: up, down, draining, checking, unhealthy or unavail."""
    down, drain, _ = overrides
    if flag(down, server.down):
        return "down"
    if flag(drain, False):
        return "draining"
    if health is Health.CHECKING:
        return "checking"
    if health is Health.DOWN:
        return "unhealthy"
    if unavailable:
        return "unavail"
    return "up"


class PatchError(Exception):
    """A PATCH the API refuses: nginx Plus's status, text and code."""

    def __init__(self, status: int, text: str, code: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code


# nginx Plus's server parameters that sheer's API does not change (the configuration does).
_FIXED = ("server", "service", "backup", "max_conns", "max_fails", "fail_timeout", "slow_start", "route")


def parse_patch(body: object, server_id: int) -> dict[str, int]:
    """The changes a PATCH body asks for: {"down": TRUE|FALSE, "drain": ..., "weight": N}."""
    if not isinstance(body, dict):
        raise PatchError(400, "json error: an object was expected", "UpstreamConfFormatError")
    changes: dict[str, int] = {}
    for name, value in body.items():
        if name in ("down", "drain"):
            if not isinstance(value, bool):
                raise PatchError(400, f'invalid "{name}" value', "UpstreamConfFormatError")
            changes[name] = TRUE if value else FALSE
        elif name == "weight":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WEIGHT:
                raise PatchError(400, 'invalid "weight" value', "UpstreamBadWeight")
            changes[name] = value
        elif name == "id":
            if value != server_id:
                raise PatchError(400, "server ID is immutable", "UpstreamServerImmutable")
        elif name in _FIXED:
            if isinstance(value, (dict, list)):
                raise PatchError(400, "nested object or list", "UpstreamConfFormatError")
            raise PatchError(400, f'the "{name}" parameter cannot be changed through sheer\'s API '
                                  '(down, drain and weight can; reload for the rest)',
                             "UpstreamConfFormatError")
        else:
            raise PatchError(400, f'unknown parameter "{name}"', "UpstreamConfFormatError")
    return changes
