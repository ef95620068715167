"""What a TCP stream session (sheer.core.tcp) tells its driver to do: the commands, in the order given,
and the sides they name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import final

from sheer.core.balancers import Balancer, Peer
from sheer.core.bind import BindTo


class Side(IntEnum):
    CLIENT = 0
    UPSTREAM = 1


@final
@dataclass(slots=True)
class Connect:
    """Open a connection to `peer`, bound as proxy_bind says; then report `connected` or `connect_failed`."""

    peer: Peer
    bind: BindTo | None


@final
@dataclass(frozen=True, slots=True)
class Answer:
    """`return`: send `data` to the client; report `eof(UPSTREAM)` once it is delivered."""

    data: bytes


@final
@dataclass(frozen=True, slots=True)
class Shutdown:
    """Pass an EOF on: shutdown(SHUT_WR) of the connection to `side`."""

    side: Side


@final
@dataclass(frozen=True, slots=True)
class Close:
    """Close both connections, then write the access log. `discard`: first read away what the client
    sent and nobody will read, so that it sees an orderly end rather than a reset."""

    discard: bool = False


class Context(Enum):
    """What the driver appends to a log line, as nginx's log handler does."""

    CLIENT = "client"            # client: ADDR, server: LISTEN
    SESSION = "session"          # ... and the upstream (Log.peer, when set) and the bytes either way
    BYTES = "bytes"              # the bytes either way, alone


@final
@dataclass(frozen=True, slots=True)
class Log:
    """Write `message` and its context to the server's error log at `level`; then `; hint` if any."""

    level: str
    message: str
    context: Context = Context.SESSION
    peer: Peer | None = None
    hint: str = ""


@final
@dataclass(frozen=True, slots=True)
class Resolve:
    """`proxy_pass $variable` rendered to a name and port: resolve it with the server's resolver, then
    report `chosen` with the balancer of its addresses or nginx's error line and status."""

    value: str


@final
@dataclass(frozen=True, slots=True)
class Arm:
    """A deadline came before the driver's timer: set the timer to `Deadlines.next_deadline()` again."""


Command = Connect | Answer | Shutdown | Close | Log | Arm | Resolve
NOTHING: tuple[Command, ...] = ()
ARM = Arm()
ARMING: tuple[Command, ...] = (ARM,)
CLOSE = Close()
CLOSING: tuple[Command, ...] = (CLOSE,)
DISCARDING: tuple[Command, ...] = (Close(discard=True),)


SHUTDOWN = (Shutdown(Side.CLIENT), Shutdown(Side.UPSTREAM))       # toward each side
CLIENT_DISCONNECTED = (Log("info", "client disconnected", Context.BYTES), CLOSE)
UPSTREAM_DISCONNECTED = (Log("info", "upstream disconnected", Context.BYTES), CLOSE)


# `proxy_pass $variable`: the rendered value's balancer, nginx's line and status when there is none, or
# a name to resolve first
Chosen = Balancer | tuple[str, int]
Choose = Callable[[str], "Chosen | Resolve"]
