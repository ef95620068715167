"""sd_notify(3): tell systemd (Type=notify) when the master is ready, reloading or stopping.

The protocol is one datagram of `KEY=VALUE` lines to the AF_UNIX socket named by
$NOTIFY_SOCKET (a path, or `@name` in the abstract namespace). Without the variable (not run
by systemd) every call does nothing. As systemd 252 understands a reload: `RELOADING=1` with
`MONOTONIC_USEC=` when it starts, `READY=1` when it is over (the new configuration serving, or
refused and the old one still serving); 253's Type=notify-reload reads the same messages.
"""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self.address = "\0" + address[1:] if address and address.startswith("@") else address

    def send(self, **fields: object) -> None:
        if not self.address:
            return
        text = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(text.encode(), self.address)
        except OSError:
            pass   # systemd went away or the socket is not ours: readiness is advisory

    def ready(self, status: str) -> None:
        self.send(ready=1, mainpid=os.getpid(), status=status)

    def reloading(self) -> None:
        self.send(reloading=1, monotonic_usec=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000,
                  status="reloading")

    def stopping(self, status: str) -> None:
        self.send(stopping=1, status=status)
