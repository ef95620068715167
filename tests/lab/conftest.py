"""Lab tier: one lab per session (torn down even on failure), helpers from sheer.lab.testing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from sheer.lab.proxy import RunningProxy
from sheer.lab.testing import Lab, sheer_unavailable_reason, unsupported_reason


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    reason = unsupported_reason()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="session")
def sheer_ready(lab: Lab) -> None:
    # TODO(lab): remove once `python -m sheer -t` runs the article's config
    reason = sheer_unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def proxy(lab: Lab, sheer_ready: None) -> Callable[[str], AbstractContextManager[RunningProxy]]:
    """proxy(config_text) -> context manager running sheer in the proxy namespace with that config."""
    return lambda config_text: lab.proxy(config_text, "sheer")
