"""Fixtures for io tests that run a real sheer master (see sheer_process.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sheer_process import Sheer


@pytest.fixture(name="run_sheer")
def run_sheer_fixture(tmp_path: Path) -> Iterator[Callable[..., Sheer]]:
    """`run_sheer(config_text)` starts a master and waits for its listeners; all are stopped after the
    test."""
    started: list[Sheer] = []

    def run(text: str, *, start: bool = True, **kw: Any) -> Sheer:
        process = Sheer(tmp_path, text, **kw)
        started.append(process)
        return process.start() if start else process

    try:
        yield run
    finally:
        for process in started:
            process.stop()


@pytest.fixture(name="closing")
def closing_fixture() -> Iterator[Callable[[Any], Any]]:
    """`closing(thing)` returns `thing` and calls its close() after the test, even on failure."""
    things: list[Any] = []

    def add(thing: Any) -> Any:
        things.append(thing)
        return thing

    try:
        yield add
    finally:
        for thing in reversed(things):
            with contextlib.suppress(OSError):
                thing.close()
