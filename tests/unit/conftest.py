"""Unit tests never ask a real resolver: names resolve through a fake that knows `localhost` only
(tests that need more pass `lookup=` to `load`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sheer.config import names
from sheer.core.balancers.round_robin import Peer


def hosts_only(host: str) -> tuple[str, ...]:
    if host == "localhost":
        return ("127.0.0.1",)
    raise names.HostNotFound(host)


@pytest.fixture(autouse=True)
def no_real_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(names, "system_lookup", hosts_only)
    yield


@pytest.fixture(autouse=True)
def quick_pick_unless_set_by_hand() -> Iterator[None]:
    """A test that sets a peer's health by hand turns round robin's quick pick off for the process
    (Peer.hand_set): every test starts with it on again, so the quick pick is what tests see."""
    Peer.hand_set = False
    yield
