"""How the answers a location makes are framed and addressed, as nginx's core and headers filter module
read them: `add_header` and `add_trailer` (NAME VALUE [always]; the innermost level with any is the
location's), `chunked_transfer_encoding`, and the redirects nginx makes itself (`absolute_redirect`,
`server_name_in_redirect`, `port_in_redirect`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sheer.config.errors import ConfigError, Source
from sheer.config.table import HTTP_ALL, Directive, entry
from sheer.config.template import HTTP_PREFIXES, HTTP_VARIABLES, Template, compile_template
from sheer.config.values import parse_flag


class Block(Protocol):
    """A level of the configuration (sheer.config.tree.Block)."""

    settings: dict[str, Any]

_SENT = ("sent_http_", "sent_trailer_")


@dataclass(frozen=True, slots=True)
class AddHeader:
    """`add_header NAME VALUE [always]` (and `add_trailer`): sent with 2xx/3xx responses, with every
    response if `always`."""

    name: str
    value: Template
    always: bool = False
    sent: bool = False      # VALUE reads $sent_http_* or $sent_trailer_*: the lines added before it count


@dataclass(frozen=True, slots=True)
class Replies:
    """A location's (or a server's, for a request no location takes) framing and redirect settings."""

    add_trailers: tuple[AddHeader, ...] = ()
    chunked: bool = True                    # chunked_transfer_encoding
    absolute_redirect: bool = True
    server_name_in_redirect: bool = False
    port_in_redirect: bool = True
    keepalive_header: float | None = None   # keepalive_timeout's second argument: Keep-Alive: timeout=N


DEFAULT_REPLIES = Replies()


def _lines(args: list[str], src: Source) -> list[str]:
    if len(args) == 3 and args[2] != "always":
        raise ConfigError(f'invalid parameter "{args[2]}"', src)
    return args


def _flag(name: str) -> Any:
    return lambda args, src: parse_flag(args[0], name, src)


DIRECTIVES: tuple[Directive, ...] = (
    entry("add_header", HTTP_ALL, (2, 3), _lines, multi=True),
    entry("add_trailer", HTTP_ALL, (2, 3), _lines, multi=True),
    entry("chunked_transfer_encoding", HTTP_ALL, (1, 1), _flag("chunked_transfer_encoding")),
    entry("absolute_redirect", HTTP_ALL, (1, 1), _flag("absolute_redirect")),
    entry("server_name_in_redirect", HTTP_ALL, (1, 1), _flag("server_name_in_redirect")),
    entry("port_in_redirect", HTTP_ALL, (1, 1), _flag("port_in_redirect")),
)


def _inherited(chain: Sequence[Block], key: str, default: Any) -> Any:
    return next((block.settings[key] for block in chain if key in block.settings), default)


def added_lines(chain: Sequence[Block], key: str) -> tuple[AddHeader, ...]:
    """The add_header (or add_trailer) lines of the innermost level that has any (nginx's inheritance)."""
    found = []
    for args, source in _inherited(chain, key, []):
        value = compile_template(args[1], source, HTTP_VARIABLES, HTTP_PREFIXES)
        sent = any(name.startswith(_SENT) for name in value.variables)
        found.append(AddHeader(args[0], value, len(args) == 3, sent))
    return tuple(found)


def replies_of(chain: Sequence[Block]) -> Replies:
    found = Replies(
        add_trailers=added_lines(chain, "add_trailer"),
        chunked=_inherited(chain, "chunked_transfer_encoding", True),
        absolute_redirect=_inherited(chain, "absolute_redirect", True),
        server_name_in_redirect=_inherited(chain, "server_name_in_redirect", False),
        port_in_redirect=_inherited(chain, "port_in_redirect", True),
        # set by the innermost keepalive_timeout with two arguments (nginx merges it on its own)
        keepalive_header=next((block.settings["keepalive_timeout"][1] for block in chain
                               if block.settings.get("keepalive_timeout", (0, None))[1] is not None), None),
    )
    return DEFAULT_REPLIES if found == DEFAULT_REPLIES else found
