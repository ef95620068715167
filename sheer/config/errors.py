"""Configuration errors: they always name the file and line, like `nginx -t`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Source:
    """Where a directive was written."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class ConfigError(Exception):
    """A configuration problem, located at `source` when known."""

    def __init__(self, message: str, source: Source | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def __str__(self) -> str:
        if self.source is None:
            return self.message
        return f"{self.source}: {self.message}"


def unexpected(exc: BaseException) -> str:
    """An error nobody foresaw, in one line (the master and `sheer -t` say it instead of a traceback):
    what it is, and that it is sheer's to fix."""
    return f"{type(exc).__name__}: {exc!s:.300} (unexpected: a bug in sheer, please report it)"
