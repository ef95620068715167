"""The plumbing of announcing VIPs (sheer.core.announce), as plan items `sheer net` applies and reverts:

- the VIP address on a dummy interface `sheer-vip` (or on `lo` where the kernel has no dummy
  interfaces), so the kernel accepts the VIP's traffic whichever instance the router sends it to;
- BIRD's fragment: a file BIRD includes (`announce_bird_fragment`), with one static route per VIP
  through the device sheer's master sets up while it can serve it; after writing it, `birdc
  configure` (over `announce_bird_socket`) makes BIRD read it.

And what `sheer doctor` asks BIRD (`birdc show protocols`, `show route`).
"""

from __future__ import annotations

import errno
import os
import subprocess
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from sheer.net.errors import KernelError
from sheer.net.facts import KernelFacts
from sheer.net.items import Address, BirdFragment, Link

BIRDC = "birdc"


def _netlink(what: str, call: Any, *absent: int) -> bool:
    try:
        call()
        return True
    except NetlinkError as exc:
        if exc.code in absent:
            return False
        raise KernelError(what, exc.code) from exc


# --- ensure (returns created, previous) and undo ------------------------------------------------

def ensure_link(item: Link) -> bool:
    with IPRoute() as ipr:
        created = _netlink(item.commands()[0], lambda: ipr.link("add", ifname=item.dev, kind="dummy"),
                           errno.EEXIST)
        index = ipr.link_lookup(ifname=item.dev)[0]
        _netlink(item.commands()[1], lambda: ipr.link("set", index=index, state="up"))
    return created


def undo_link(item: Link) -> None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=item.dev)
        if found:
            _netlink(f"ip link del {item.dev}", lambda: ipr.link("del", index=found[0]), errno.ENODEV)


def _addr_spec(ipr: Any, item: Address) -> dict[str, Any] | None:
    found = ipr.link_lookup(ifname=item.dev)
    if not found:
        return None
    address, _, plen = item.address.partition("/")
    return {"index": found[0], "address": address, "prefixlen": int(plen or 32)}


def ensure_address(item: Address) -> bool:
    with IPRoute() as ipr:
        spec = _addr_spec(ipr, item)
        if spec is None:
            raise KernelError(item.commands()[0], errno.ENODEV, f"no interface {item.dev} here")
        return _netlink(item.commands()[0], lambda: ipr.addr("add", **spec), errno.EEXIST)


def undo_address(item: Address) -> None:
    with IPRoute() as ipr:
        spec = _addr_spec(ipr, item)
        if spec is not None:
            _netlink(f"ip addr del {item.address} dev {item.dev}", lambda: ipr.addr("del", **spec),
                     errno.EADDRNOTAVAIL, errno.ENODEV)


def read_text(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def ensure_fragment(item: BirdFragment) -> tuple[bool, str | None, str]:
    """Write the fragment (if it differs) and ask BIRD to read it. Returns (changed, the file's content
    before, what BIRD said)."""
    before = read_text(item.path)
    changed = before != item.text
    if changed:
        directory = os.path.dirname(item.path)
        try:
            if directory:
                os.makedirs(directory, exist_ok=True)
            tmp = f"{item.path}.tmp"
            with open(tmp, "w") as handle:
                handle.write(item.text)
            os.replace(tmp, item.path)
        except OSError as exc:
            raise KernelError(f"writing {item.path}", exc.errno or errno.EIO,
                                "check announce_bird_fragment") from None
    return changed, before, configure(item.socket) if changed else "unchanged"


def undo_fragment(item: BirdFragment, previous: str | None) -> str:
    """Put back what was there before apply (nothing: the file goes) and let BIRD read it again."""
    try:
        if previous is None:
            os.unlink(item.path)
        else:
            with open(item.path, "w") as handle:
                handle.write(previous)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise KernelError(f"removing {item.path}", exc.errno or errno.EIO) from None
    return configure(item.socket)


def ensure(item: Link | Address | BirdFragment,
           previous: str | None) -> tuple[bool, str | None, str | None, bool]:
    """Make `item` true. Returns (created, the state to restore on revert, what BIRD said, changed)."""
    if isinstance(item, BirdFragment):
        changed, before, said = ensure_fragment(item)
        return True, previous if previous is not None else before, said, changed
    changed = ensure_link(item) if isinstance(item, Link) else ensure_address(item)
    return changed, None, None, changed


def undo(item: Link | Address | BirdFragment, previous: str | None) -> None:
    if isinstance(item, BirdFragment):
        undo_fragment(item, previous)
    elif isinstance(item, Link):
        undo_link(item)
    else:
        undo_address(item)


def status(item: Link | Address | BirdFragment, facts: KernelFacts) -> tuple[bool, str]:
    line = item.commands()[0]
    if isinstance(item, Link):
        return item.dev in facts.mtus, f"{line} (the VIPs' interface)"
    if isinstance(item, Address):
        return any(a.dev == item.dev and a.address == item.address for a in facts.addresses), line
    same = read_text(item.path) == item.text
    return same, f"BIRD's fragment {item.path}" + ("" if same else " differs from the plan")


# --- asking BIRD ------------------------------------------------------------------------------------

def birdc(socket: str, *args: str) -> tuple[bool, str]:
    """(answered, its text): `birdc -s SOCKET ARGS`; not answered when BIRD is not there."""
    try:
        res = subprocess.run([BIRDC, "-s", socket, *args], capture_output=True, text=True, check=False,
                             timeout=10)
    except FileNotFoundError:
        return False, "birdc is not installed (Debian: bird2)"
    except subprocess.TimeoutExpired:
        return False, f"birdc -s {socket} did not answer within 10 s"
    text = (res.stdout + res.stderr).strip()
    lines = [line for line in text.splitlines() if not line.startswith("BIRD ")]
    if res.returncode != 0 or "Unable to connect" in text:
        return False, " ".join(lines) or f"birdc exited {res.returncode}"
    return True, "\n".join(lines)


def configure(socket: str) -> str:
    """`birdc configure`: what BIRD said, in one line (never an error: BIRD reads the file when it
    starts, and `sheer doctor` checks it took it)."""
    answered, text = birdc(socket, "configure")
    if not answered:
        return f"BIRD not told ({text}); it reads the fragment when it starts or reconfigures"
    return f"birdc configure: {' '.join(text.split())}"


@dataclass(frozen=True, slots=True)
class Protocol:
    name: str
    proto: str                     # "BGP", "Static", "Device", ...
    state: str                     # "up", "start", "down"
    info: str                      # BGP: "Established", "Active", "Connect", ...


def protocols(socket: str) -> tuple[list[Protocol] | None, str]:
    """`birdc show protocols`, parsed; None (and why) when BIRD does not answer."""
    answered, text = birdc(socket, "show", "protocols")
    if not answered:
        return None, text
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] != "Name":
            # Name Proto Table State Since Info (Since is one or two words)
            info = fields[6] if len(fields) > 6 and fields[5][:1].isdigit() else " ".join(fields[5:6])
            found.append(Protocol(fields[0], fields[1], fields[3], info))
    return found, ""


def exported(socket: str, protocol: str, prefix: str) -> tuple[bool | None, str]:
    """Whether BIRD exports `prefix` to `protocol` (`show route export`); None when it cannot tell."""
    answered, text = birdc(socket, "show", "route", "export", protocol, "for", prefix)
    if not answered:
        return None, text
    # "192.168.100.10/32    unicast [sheer_announce 05:29:29.548] * (200)", or "Network not found"
    return any(line.split()[:1] == [prefix] for line in text.splitlines()), text
