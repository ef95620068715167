"""What every sheer front-end (the main CLI, net, doctor, trace) does the same way."""

from __future__ import annotations

import sys

from sheer.config import Config, ConfigError, load

DEFAULT_CONF = "/etc/sheer/sheer.conf"


def say(message: str) -> None:
    print(f"sheer: {message}", file=sys.stderr)


def load_config(path: str) -> Config | None:
    """The configuration, or None after saying why not (file:line, nginx's wording)."""
    try:
        return load(path)
    except ConfigError as exc:
        say(f"[emerg] {exc}")
        return None
