"""Unit tests never ask a real resolver: names resolve through a fake that knows `localhost` only
(tests that need more pass `lookup=` to `load`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sheer.config import names


def hosts_only(host: str) -> tuple[str, ...]:
    if host == "localhost":
        return ("127.0.0.1",)
    raise names.HostNotFound(host)


@pytest.fixture(autouse=True)
def no_real_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(names, "system_lookup", hosts_only)
    yield
