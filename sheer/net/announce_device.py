"""The device whose state is a VIP's announcement (sheer.core.announce): a tun device the running
sheer's master holds open.

Why a tun device: it is the one kind of interface that belongs to a process. Created without
TUNSETPERSIST, it exists exactly as long as a file descriptor of /dev/net/tun is attached to it;
when the master exits, however it exits (SIGKILL included), the kernel closes the descriptor and
unregisters the interface, and BIRD, which watches interfaces over netlink, drops the static route
through it and withdraws the VIP. No packet ever goes through it: it has no address and no route.
Up (IFF_UP) announces, down withdraws; both are one ioctl that BIRD hears at once.

Children of the master must not keep the descriptor (a worker outliving a killed master would keep
the VIP announced): it is opened O_CLOEXEC and closed in every forked child (`os.register_at_fork`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFNAMSIZ = 16

_open: dict[int, str] = {}           # fd -> device name, for the fork handler


def _close_in_child() -> None:
    for fd in list(_open):
        try:
            os.close(fd)
        except OSError:
            pass
    _open.clear()


os.register_at_fork(after_in_child=_close_in_child)


class DeviceError(Exception):
    """The device cannot be made or changed: errno and the fix."""


def _why(code: int, name: str) -> str:
    fixes = {
        errno.EPERM: "announcing needs CAP_NET_ADMIN: run sheer as root, or keep the capability",
        errno.EACCES: "announcing needs CAP_NET_ADMIN and access to /dev/net/tun",
        errno.ENOENT: "/dev/net/tun is missing: load the tun module (`modprobe tun`) or create the node",
        errno.EBUSY: f"another process holds {name}: is another sheer announcing the same address here?",
        errno.EINVAL: f"an interface named {name} exists and is not sheer's (delete it)",
    }
    return f"{os.strerror(code)}: {fixes.get(code, 'see the kernel log')}"


class AnnounceDevice:
    """One VIP's device, held open by this process."""

    def __init__(self, name: str) -> None:
        if len(name.encode()) >= IFNAMSIZ:
            raise DeviceError(f"interface name {name!r} is longer than {IFNAMSIZ - 1} bytes")
        self.name = name
        try:
            self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            code = exc.errno or 0
            raise DeviceError(f"open(/dev/net/tun) failed ({code}: {_why(code, name)})") from None
        try:
            # IFF_TUN (no link layer), IFF_NO_PI; not persistent: it goes with the last descriptor
            fcntl.ioctl(self.fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
        except OSError as exc:
            os.close(self.fd)
            raise DeviceError(f"creating {name} failed ({exc.errno}: {_why(exc.errno or 0, name)})") from None
        _open[self.fd] = name

    def set_up(self, up: bool) -> None:
        """IFF_UP on (announce) or off (withdraw)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH", self.name.encode(), 0))
                flags = struct.unpack("16sH", ifr[:18])[1]
                flags = flags | IFF_UP if up else flags & ~IFF_UP
                fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", self.name.encode(), flags))
            except OSError as exc:
                code = exc.errno or 0
                raise DeviceError(f"setting {self.name} {'up' if up else 'down'} failed "
                                  f"({code}: {_why(code, self.name)})") from None

    def is_up(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH", self.name.encode(), 0))
        return bool(struct.unpack("16sH", ifr[:18])[1] & IFF_UP)

    def close(self) -> None:
        """The interface goes away (and with it the announcement)."""
        if self.fd >= 0:
            _open.pop(self.fd, None)
            os.close(self.fd)
            self.fd = -1
