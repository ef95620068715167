"""Lab tier: one lab per session (torn down even on failure), helpers from sheer.lab.testing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from sheer.lab import build, fleet
from sheer.lab.running_proxy import RunningProxy
from sheer.lab.testing import Lab, shared_lab, sheer_unavailable_reason, unsupported_reason


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    reason = unsupported_reason()
    if reason:
        pytest.skip(reason)
    # Shared: a benchmark or another session may be using the lab too; the last one takes it down.
    with shared_lab(Lab()) as lab:
        yield lab


@pytest.fixture(scope="session")
def sheer_ready(lab: Lab) -> None:
    # sheer itself must work here: a broken `sheer -t` is a failure, never a reason to skip
    reason = sheer_unavailable_reason()
    if reason:
        pytest.fail(reason)


@pytest.fixture
def proxy(lab: Lab, sheer_ready: None) -> Callable[[str], AbstractContextManager[RunningProxy]]:
    """proxy(config_text) -> context manager running sheer in the proxy namespace with that config."""
    return lambda config_text: lab.proxy(config_text, "sheer")


@pytest.fixture(scope="module")
def lab6(lab: Lab) -> Iterator[Lab]:
    """The lab made dual-stack (`sheer lab up --ipv6`) for one test module, IPv6 off again after it."""
    build.ipv6(True, lab.topo, lab.state_dir)
    try:
        yield lab
    finally:
        build.ipv6(False, lab.topo, lab.state_dir)


@pytest.fixture(scope="session")
def fleet_of(lab: Lab) -> Iterator[Callable[[int], Lab]]:
    """fleet_of(n): the lab with a fleet of n proxies (built, or rebuilt from another size), shared by
    the fleet's test modules; removed once at the end of the session, even on failure."""
    def up(n: int) -> Lab:
        fleet.up(n, lab.state_dir)
        return lab

    try:
        yield up
    finally:
        fleet.remove(lab.state_dir)
