"""How a location reads a client's request body before proxying it: nginx's client_body_buffer_size,
client_body_in_file_only, client_body_in_single_buffer, client_body_temp_path and
proxy_request_buffering (sheer/io/http/body.py, sheer/io/http/body_file.py do it).

sheer keeps a buffered body in memory (up to 64 KiB, then it streams it); what these change is what
nginx lets a configuration see: $request_body holds a body that fits in client_body_buffer_size and was
not put in a file; $request_body_file names the file nginx would have written (for a larger body, or
any with client_body_in_file_only), in client_body_temp_path: sheer writes it when the variable is
first read.
proxy_request_buffering off sends the body upstream as it arrives, without waiting for any of it
(chunked when the client's is and proxy_http_version is 1.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sheer.config.errors import ConfigError, Source
from sheer.config.prefix import full_name
from sheer.config.table import HTTP_ALL, Directive, entry
from sheer.config.values import parse_flag, parse_size

InFileOnly = Literal["off", "on", "clean"]
BUFFER_SIZE = 16 * 1024      # nginx's default on 64-bit systems: two memory pages


@dataclass(frozen=True, slots=True)
class RequestBodyConfig:
    buffer_size: int = BUFFER_SIZE
    in_file_only: InFileOnly = "off"     # on: the file stays after the request; clean: it is removed
    temp_path: str = "client_body_temp"  # its full name (under the prefix)
    buffering: bool = True               # proxy_request_buffering


BODY_DEFAULTS = RequestBodyConfig()


def _in_file_only(args: list[str], src: Source) -> str:
    if args[0] not in ("on", "off", "clean"):
        raise ConfigError(f'invalid value "{args[0]}"', src)     # nginx's ngx_conf_set_enum_slot
    return args[0]


def _temp_path(args: list[str], src: Source) -> str:
    """ngx_conf_set_path_slot: a path, then up to three directory levels of 1 or 2 characters (sheer
    writes its files in the path itself: the levels change nothing)."""
    for level in args[1:]:
        if level not in ("1", "2"):
            raise ConfigError(f'invalid value "{level}" in "client_body_temp_path" directive', src)
    return args[0]


DIRECTIVES: tuple[Directive, ...] = (
    entry("client_body_buffer_size", HTTP_ALL, (1, 1),
          lambda args, src: parse_size(args[0], "client_body_buffer_size", src)),
    entry("client_body_in_file_only", HTTP_ALL, (1, 1), _in_file_only),
    entry("client_body_in_single_buffer", HTTP_ALL, (1, 1),
          lambda args, src: parse_flag(args[0], "client_body_in_single_buffer", src)),  # sheer's is one
    entry("client_body_temp_path", HTTP_ALL, (1, 4), _temp_path),
    entry("proxy_request_buffering", HTTP_ALL, (1, 1),
          lambda args, src: parse_flag(args[0], "proxy_request_buffering", src)),
)


class _Block(Protocol):
    """sheer.config.tree.Block (which this module's directives are part of)."""

    @property
    def settings(self) -> dict[str, Any]: ...


def _inherited(chain: Sequence[_Block], key: str, default: Any) -> Any:
    """sheer.config.scope.inherited (which needs the model this module is part of)."""
    return next((block.settings[key] for block in chain if key in block.settings), default)


def request_body_of(chain: Sequence[_Block], prefix: str) -> RequestBodyConfig:
    """The location's settings, nginx's defaults where nothing is written."""
    return RequestBodyConfig(
        buffer_size=_inherited(chain, "client_body_buffer_size", BUFFER_SIZE),
        in_file_only=_inherited(chain, "client_body_in_file_only", "off"),
        temp_path=full_name(prefix, _inherited(chain, "client_body_temp_path", "client_body_temp")),
        buffering=_inherited(chain, "proxy_request_buffering", True),
    )
