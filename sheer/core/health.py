"""Active health of one peer: a small state machine fed with probe results; time is an argument.

States, as nginx Plus shows them: UP (gets traffic), DOWN (gets none), CHECKING (a `mandatory`
peer before its first check completes: gets none). `fails` consecutive failures take an UP
peer DOWN, `passes` consecutive successes bring a DOWN one back; a CHECKING peer goes where its
first result says.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sheer.config.health import HealthCheck


class Health(enum.IntEnum):
    """Also the byte published in shared memory: nonzero means no traffic."""

    UP = 0
    DOWN = 1
    CHECKING = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class Outcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Changed:
    """A state change, for the log: `peer 10.0.0.1:53 ... is unhealthy (up -> down): <reason>`."""

    old: Health
    new: Health
    reason: str


# (state, outcome) -> (state when the streak reaches its threshold, which streak counts)
_TRANSITIONS: dict[tuple[Health, Outcome], tuple[Health, str]] = {
    (Health.UP, Outcome.PASSED): (Health.UP, ""),
    (Health.UP, Outcome.FAILED): (Health.DOWN, "fails"),
    (Health.DOWN, Outcome.PASSED): (Health.UP, "passes"),
    (Health.DOWN, Outcome.FAILED): (Health.DOWN, ""),
    (Health.CHECKING, Outcome.PASSED): (Health.UP, "first"),
    (Health.CHECKING, Outcome.FAILED): (Health.DOWN, "first"),
}


class PeerHealth:
    """One checked peer: its state, its streaks and when it is due for the next probe."""

    __slots__ = ("check", "due", "fails", "passes", "state")

    def __init__(self, check: HealthCheck, now: float, state: Health | None = None) -> None:
        self.check = check
        self.state = state if state is not None else (Health.CHECKING if check.mandatory else Health.UP)
        self.fails = 0
        self.passes = 0
        self.due = now          # the first probe runs at once

    def record(self, outcome: Outcome, now: float, reason: str = "", jitter: float = 0.0) -> Changed | None:
        """Feed one probe's result; `jitter` in [0, 1) picks the delay within `jitter=`."""
        if outcome is Outcome.PASSED:
            self.passes += 1
            self.fails = 0
        else:
            self.fails += 1
            self.passes = 0
        self.due = now + self.check.interval + jitter * self.check.jitter
        target, streak = _TRANSITIONS[(self.state, outcome)]
        if target is self.state:
            return None
        if streak == "fails" and self.fails < self.check.fails:
            return None
        if streak == "passes" and self.passes < self.check.passes:
            return None
        old, self.state = self.state, target
        why = reason or outcome.value
        if streak == "fails" and self.check.fails > 1:
            why += f" ({self.fails} failed checks in a row)"
        elif streak == "passes" and self.check.passes > 1:
            why += f" ({self.passes} passed checks in a row)"
        return Changed(old, target, why)

    def timed_out_at(self, started: float) -> float:
        """When a probe started at `started` has failed for lack of an answer."""
        return started + self.check.timeout

    @property
    def usable(self) -> bool:
        return self.state is Health.UP
