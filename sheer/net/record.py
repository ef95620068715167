"""What `sheer net apply` did, recorded under /run/sheer/net/ per network namespace and role, so `revert`
removes exactly that, `status` compares against it and the running sheer finds the fast path it feeds.
Light on purpose (no netlink library): the health checker reads it at start."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sheer.net.facts import RouteFact, RuleFact
from sheer.net.items import Item, Route, Rule, from_json, to_json

STATE_DIR = Path("/run/sheer/net")


@dataclass
class Entry:
    item: Item
    created: bool                  # False: it was there before sheer; revert leaves it
    previous: str | None = None    # sysctl value, the nft table's listing, BIRD's fragment, before sheer
    listing: str | None = None     # the nft table as the kernel listed it after apply (for status);
                                   # a BIRD fragment: what BIRD said to `birdc configure`

    def to_json(self) -> dict[str, Any]:
        return {"item": to_json(self.item), "created": self.created, "previous": self.previous,
                "listing": self.listing}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Entry:
        return Entry(from_json(data["item"]), data["created"], data.get("previous"), data.get("listing"))


@dataclass
class Record:
    path: Path
    entries: list[Entry] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def load(path: Path) -> Record | None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        return Record(path, [Entry.from_json(e) for e in data["entries"]], data.get("meta", {}))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"meta": self.meta, "entries": [e.to_json() for e in self.entries]},
                                  indent=1))
        tmp.replace(self.path)

    def facts(self) -> tuple[tuple[RuleFact, ...], tuple[RouteFact, ...]]:
        ours = [e.item for e in self.entries if e.created]
        return (tuple(rule_fact(i) for i in ours if isinstance(i, Rule)),
                tuple(route_fact(i) for i in ours if isinstance(i, Route)))


def record_path(role: str, host: str | None) -> Path:
    suffix = f"-{host}" if host else ""
    return STATE_DIR / f"{netns_cookie()}-{role}{suffix}.json"


def rule_fact(r: Rule) -> RuleFact:
    return RuleFact(r.priority, r.table, r.fwmark, r.src, r.ipproto, r.sport, r.family)


def route_fact(r: Route) -> RouteFact:
    return RouteFact(r.dst, r.dev, r.via, r.table, r.kind)


def netns_id() -> int:
    return os.stat("/proc/self/ns/net").st_ino


SO_NETNS_COOKIE = 71


def netns_cookie() -> str:
    """This network namespace's identity for apply records. Inode numbers of deleted namespaces
    are reused, so a record keyed by inode could be picked up by an unrelated new namespace; the
    kernel's netns cookie (SO_NETNS_COOKIE, Linux 5.14+) is never reused while the system runs."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            return f"c{int.from_bytes(probe.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), 'little')}"
    except OSError:
        return f"i{netns_id()}"


__all__ = ["STATE_DIR", "Entry", "Record", "netns_cookie", "netns_id", "record_path", "route_fact",
           "rule_fact"]
