"""Lab tier: one lab per session (torn down even on failure), helpers from sheer.lab.testing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

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
