"""Variables made from others by a block of the configuration: a `map` block, what a `geo` block becomes
(sheer.config.geo reads it, sheer.core.geo looks addresses up) and a `split_clients` block (read and
looked up in sheer.config.split_clients, sheer.core.split_clients)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sheer.config.errors import Source
from sheer.config.realip import Network
from sheer.config.template import Template

Range = tuple[int, int, str]        # first and last IPv4 address (as integers), value


@dataclass(frozen=True, slots=True)
class Geo:
    variable: str
    address: Template | None                      # None: the client's address
    networks: tuple[tuple[Network, str], ...] = ()  # most specific first
    ranges: tuple[Range, ...] | None = None       # `ranges`: sorted, not overlapping
    default: str = ""
    proxies: tuple[Network, ...] = ()
    proxy_recursive: bool = False
    volatile: bool = False
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Split:
    """`split_clients STRING $variable { PERCENT% VALUE; ... * VALUE; }`: the parts' upper bounds on
    MurmurHash2's 32-bit range (0: `*`, the rest), in the order written."""

    variable: str
    string: Template
    parts: tuple[tuple[int, str], ...]
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Map:
    """`map STRING $variable { ... }` (http and stream), ready to look up: exact keys (lowercase), with
    `hostnames` the `*.` and `.*` wildcards (longest first), the regexes in the order written."""

    variable: str
    string: Template
    exact: tuple[tuple[str, Template], ...] = ()
    heads: tuple[tuple[str, Template], ...] = ()        # "*.example.com" as ".example.com"
    tails: tuple[tuple[str, Template], ...] = ()        # "www.example.*" as "www.example."
    regexes: tuple[tuple[re.Pattern[str], Template], ...] = ()
    default: Template | None = None
    hostnames: bool = False
    volatile: bool = False
    source: Source | None = None
