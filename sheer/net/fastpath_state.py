"""The fast path as the kernel has it: load it, compare it, read its counters and map sizes, and
find who feeds it. Used by `sheer net apply|status|revert`, `sheer doctor` and the feeder."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from sheer.net import nfnetlink
from sheer.net.fastpath import NftFastPath
from sheer.net.nftlib import Nft, Result

_MOD = re.compile(r"\bmod \d+\b")


class Unavailable(Exception):
    """The kernel refused the fast path (no netdev ingress, jhash or numgen): the user-space path serves."""


@dataclass(frozen=True, slots=True)
class Counted:
    packets: int
    bytes: int


def listing(nft: Nft, name: str = "sheer") -> str | None:
    """The table's shape: stateless (no counter values), terse (no map entries), and with every
    `mod N` written `mod N`, since the feeder rewrites round robin's modulus as peers come and go."""
    res = nft.run(f"list table netdev {name}", stateless=True, terse=True)
    return _MOD.sub("mod N", res.out) if res.ok else None


def load(nft: Nft, item: NftFastPath) -> None:
    res = nft.run(item.script())
    if not res.ok:
        raise Unavailable(_why(res))


def delete(nft: Nft, name: str, previous: str | None = None) -> Result:
    return nft.run(f"table netdev {name}\ndelete table netdev {name}\n" + (previous or ""))


def handle(name: str = "sheer") -> int | None:
    """The table's handle: a new one whenever the table is made again (`sheer net apply` replaced it)."""
    return nfnetlink.table_handle(name)


def counters(name: str = "sheer") -> dict[str, Counted]:
    """Named counter -> what it counted (one per upstream server: `up_172_16_0_11_53`)."""
    return {key: Counted(*value) for key, value in nfnetlink.counters(name).items()}


def filled(nft: Nft, name: str, map_name: str) -> int | None:
    """How many entries a map holds (None: no such map)."""
    objs = nft.json(f"list map netdev {name} {map_name}")
    for obj in objs:
        found = obj.get("map")
        if found:
            return len(found.get("elem", []))
    return None


def feeders() -> list[int]:
    """PIDs of sheer health checkers (the feeders) running in this network namespace."""
    try:
        here = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return []
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle_:
                title = handle_.read().split(b"\0")[0]
            if title.startswith(b"sheer: health checker") and os.stat(f"/proc/{pid}/ns/net").st_ino == here:
                found.append(int(pid))
        except OSError:
            continue
    return sorted(found)


def _why(res: Result) -> str:
    return res.first_error() or "nft failed"
