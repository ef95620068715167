"""The one error `sheer net` raises when the kernel (or BIRD's files) refuse: errno and the fix."""

from __future__ import annotations

import errno
import os


class KernelError(Exception):
    """The kernel refused: errno and the fix."""

    def __init__(self, what: str, code: int, detail: str = "") -> None:
        fix = {errno.EPERM: "needs CAP_NET_ADMIN: run as root",
               errno.EACCES: "needs CAP_NET_ADMIN: run as root",
               errno.ENODEV: "the interface does not exist here (check --public-if)",
               errno.ENETUNREACH: "the gateway is not on a connected network here (check --gateway/--via)"}
        hint = fix.get(code, detail)
        super().__init__(f"{what} failed ({code}: {os.strerror(code)}){': ' + hint if hint else ''}")
        self.code = code
