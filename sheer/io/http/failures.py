"""How an exchange with the upstream ends badly (sheer.io.http.exchange): what the proxy catches."""

from __future__ import annotations

from sheer.core.http.nextupstream import Failure
from sheer.core.http.verdict import Rejected


class _Unasked(Exception):
    """Bytes after the end of the response: a response nobody asked for, or garbage."""


class BadHeader(Exception):
    """An upstream's header line nginx refuses (sheer.core.http.headers.unique_line): its error line."""


class ClientBroke(Exception):
    """The client's body broke nginx's rules while it was being sent upstream."""

    def __init__(self, rejected: Rejected) -> None:
        super().__init__(rejected.message)
        self.rejected = rejected


class UpstreamFailed(Exception):
    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message
