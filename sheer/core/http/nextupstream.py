"""proxy_next_upstream: which failures move a request to the next peer, and what the client gets."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Failure(Enum):
    ERROR = "error"
    TIMEOUT = "timeout"
    INVALID_HEADER = "invalid_header"
    HTTP_500 = "http_500"
    HTTP_502 = "http_502"
    HTTP_503 = "http_503"
    HTTP_504 = "http_504"
    HTTP_403 = "http_403"
    HTTP_404 = "http_404"
    HTTP_429 = "http_429"


STATUS_FAILURES = {500: Failure.HTTP_500, 502: Failure.HTTP_502, 503: Failure.HTTP_503,
                   504: Failure.HTTP_504, 403: Failure.HTTP_403, 404: Failure.HTTP_404,
                   429: Failure.HTTP_429}
NON_IDEMPOTENT = frozenset({b"POST", b"LOCK", b"PATCH"})
_ALWAYS_FAILED = frozenset({Failure.ERROR, Failure.TIMEOUT, Failure.INVALID_HEADER})
_NEVER_FAILED = frozenset({Failure.HTTP_403, Failure.HTTP_404})


def status_failure(status: int, conditions: frozenset[str]) -> Failure | None:
    """A response status that proxy_next_upstream names, or None: the response goes to the client."""
    failure = STATUS_FAILURES.get(status)
    return failure if failure is not None and failure.value in conditions else None


def peer_failed(failure: Failure) -> bool:
    """Counts toward max_fails (nginx: error/timeout/invalid_header always, 403/404 never)."""
    return failure not in _NEVER_FAILED


@dataclass(frozen=True, slots=True)
class Attempt:
    """What is known about a request when a try fails."""

    method: bytes
    replayable: bool         # the request body (if any) can be sent again
    response_started: bool   # some part of the response went to the client
    tries_left: int
    elapsed: float
    timeout: float           # proxy_next_upstream_timeout; 0 = none


def may_retry(failure: Failure, conditions: frozenset[str], attempt: Attempt) -> bool:
    if "off" in conditions or failure.value not in conditions:
        return False
    if attempt.response_started or not attempt.replayable or attempt.tries_left <= 0:
        return False
    if attempt.method in NON_IDEMPOTENT and "non_idempotent" not in conditions:
        return False
    return not (attempt.timeout and attempt.elapsed >= attempt.timeout)


def final_status(failure: Failure) -> int:
    """The status the client gets when the last try failed without a usable response."""
    return 504 if failure is Failure.TIMEOUT else 502
