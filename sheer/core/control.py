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
from sheer.core.peers import configured, slot_server

UNSET, FALSE, TRUE = 0, 1, 2
MAX_WEIGHT = 1_000_000


class ControlBoard(Protocol):
    @property
    def version(self) -> int: ...

    @property
    def cells(self) -> memoryview:
        """int64 cells whose first is `version`: read per pick without a call."""
        ...

    def overrides(self, row: int) -> tuple[int, int, int]: ...


class Slots(Protocol):
    """The addresses the resolver task put in an upstream's slots (sheer.runtime.peerset)."""

    @property
    def version(self) -> int: ...

    def read(self) -> tuple[str | None, ...]:
        """One consistent look, one entry per position (None: a server resolved at load, or an empty slot)."""
        ...


def flag(value: int, configured: bool) -> bool:
    return configured if value == UNSET else value == TRUE


class UpstreamOverrides:
    """The peers of one upstream block as balancers pick from them: the resolver's addresses in the
    slots of `server NAME resolve`, and the API's changes applied (a drained server takes no new
    requests, so for picking it is down)."""

    __slots__ = ("board", "rows", "slots", "upstream")

    def __init__(self, board: ControlBoard, upstream: Upstream, rows: tuple[int, ...],
                 slots: Slots | None = None) -> None:
        self.board = board
        self.upstream = upstream
        self.rows = rows
        self.slots = slots

    @property
    def version(self) -> int:
        """Moves whenever the API or the resolver changed something (both only count up)."""
        return self.board.version + (self.slots.version if self.slots is not None else 0)

    @property
    def cell(self) -> memoryview | None:
        """Where `version` lives when only the API moves it (no `server NAME resolve` slots): a
        balancer compares `cell[0]` per pick, one subscript and no call (`docs/performance.md`,
        "What counting costs")."""
        return self.board.cells if self.slots is None else None

    def servers(self) -> tuple[UpstreamServer | None, ...]:
        out: list[UpstreamServer | None] = []
        addresses = self.slots.read() if self.slots is not None else ()
        for index, row in enumerate(self.rows):
            server = configured(self.upstream, index)
            if server.resolve:
                address = addresses[index] if index < len(addresses) else None
                if address is None:
                    out.append(None)
                    continue
                server = slot_server(server, address)
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
