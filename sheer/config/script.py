"""The rewrite module's directives as data (ngx_http_rewrite_module): `rewrite`, `if`, `set`, `break`
and `return`, in the order written, compiled once per configuration (sheer.config.rewrite builds them,
sheer.core.http.rewrite runs them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sheer.config.errors import Source
from sheer.config.template import Template

RewriteFlag = Literal["", "last", "break", "redirect", "permanent"]
FileTest = Literal["-f", "-d", "-e", "-x"]


@dataclass(frozen=True, slots=True)
class Rewrite:
    """`rewrite REGEX REPLACEMENT [FLAG]`. `args`: the replacement has a `?` (its arguments come
    before the request's); `add_args`: the request's arguments are appended (no trailing `?`)."""

    regex: re.Pattern[str]
    replacement: Template
    flag: RewriteFlag = ""
    status: int = 0             # 301 or 302: a redirect (`redirect`, `permanent`, an http:// replacement)
    args: bool = False
    add_args: bool = True
    source: Source | None = None

    @property
    def stops(self) -> bool:
        """nginx's `last = 1`: the script ends once this rewrite matched."""
        return self.flag != "" or self.status != 0


@dataclass(frozen=True, slots=True)
class SetVar:
    name: str
    value: Template
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Break:
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Return:
    """`return` inside a script (a level with `rewrite`, `if` or `set`); `text` is a body, or the
    Location of 301/302/303/307/308."""

    code: int
    text: Template | None
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """What `if (...)` tests: a variable alone (true unless "" or "0"), `=`/`!=` a string,
    `~ ~* !~ !~*` a regex (its captures are kept), or a file test `-f -d -e -x` (`!` negates)."""

    kind: Literal["value", "equal", "match", "file"]
    subject: Template
    negate: bool = False
    operand: Template | None = None            # equal
    regex: re.Pattern[str] | None = None       # match
    test: FileTest | None = None               # file


@dataclass(frozen=True, slots=True)
class If:
    """`config`: in a location, which of its nameless configurations (Location.if_configs) serves the
    request once the condition held (nginx's r->loc_conf = if_code->loc_conf); -1 at server level.
    `handler`: the block has its own proxy_pass (nginx's r->content_handler, which a later `if` without
    one keeps)."""

    condition: Condition
    body: tuple[Op, ...]
    source: Source | None = None
    config: int = -1
    handler: bool = False


Op = Rewrite | SetVar | Break | Return | If


@dataclass(frozen=True, slots=True)
class Script:
    """A server's or a location's rewrite directives (`if` blocks inside), with `rewrite_log` and
    `uninitialized_variable_warn` as they are at that level."""

    ops: tuple[Op, ...]
    log: bool = False
    warn_uninitialized: bool = True
