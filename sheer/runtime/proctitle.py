"""Process titles as nginx writes them, so `ps` tells the processes apart:
`sheer: master process sheer -c /etc/sheer/sheer.conf`, `sheer: worker process`,
`sheer: worker process is shutting down`, `sheer: health checker`."""

from __future__ import annotations

import os
import sys

import setproctitle


def command_line(argv: list[str] | None = None) -> str:
    """The master's command line as typed: `sheer -c ...` (also under `python -m sheer`)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv or os.path.basename(argv[0]) != "sheer":
        argv[:1] = ["sheer"]
    return " ".join(argv)


def master() -> None:
    setproctitle.setproctitle(f"sheer: master process {command_line()}")


def child(role: str) -> None:
    """`role`: "worker process", "worker process is shutting down", "health checker"."""
    setproctitle.setproctitle(f"sheer: {role}")
