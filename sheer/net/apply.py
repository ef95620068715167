"""Apply a plan to the current network namespace, idempotently and atomically; revert exactly what
was applied (recorded under /run/sheer/net/, sheer.net.record); compare the kernel with a plan (status)."""

from __future__ import annotations

import errno
import json
import socket
import subprocess
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from sheer.net import announce, fastpath_state, inspect
from sheer.net.errors import KernelError
from sheer.net.fastpath import NftFastPath
from sheer.net.fastpath_status import fastpath_status
from sheer.net.items import (
    Address,
    BirdFragment,
    Item,
    Link,
    NftTable,
    Route,
    Rule,
    Sysctl,
    TcClsact,
    to_json,
)
from sheer.net.nftlib import Nft
from sheer.net.plan import Plan
from sheer.net.record import Entry, Record, route_fact, rule_fact

PROTO = {"tcp": 6, "udp": 17}


def key(item: Item) -> str:
    if isinstance(item, (NftTable, NftFastPath)):
        return f"nft {item.family} {item.name}"
    if isinstance(item, Sysctl):
        return f"sysctl {item.key}"
    return json.dumps(to_json(item), sort_keys=True)


# --- one function per kind of item: ensure (returns created, previous) and undo ---------------

def _netlink(what: str, call: Any, *absent: int) -> bool:
    """Run a netlink call; True if it changed the kernel, False if the answer was one of `absent`."""
    try:
        call()
        return True
    except NetlinkError as exc:
        if exc.code in absent:
            return False
        raise KernelError(what, exc.code) from exc


def _route_spec(ipr: IPRoute, r: Route) -> dict[str, Any]:
    dst, _, plen = r.dst.partition("/")
    six = r.family == 6
    spec: dict[str, Any] = {"dst": dst, "dst_len": int(plen or (128 if six else 32)), "table": r.table,
                            "family": socket.AF_INET6 if six else socket.AF_INET}
    if r.dev:
        idx = ipr.link_lookup(ifname=r.dev)
        if not idx:
            raise KernelError(" ".join(r.commands()), errno.ENODEV)
        spec["oif"] = idx[0]
    if r.kind == "local":
        spec.update(type="local", scope=254)    # every address in this table is "ours"
    elif r.via:
        spec["gateway"] = r.via
    else:
        spec["scope"] = 253                     # on-link
    return spec


def _rule_spec(r: Rule) -> dict[str, Any]:
    six = r.family == 6
    spec: dict[str, Any] = {"table": r.table, "priority": r.priority,
                            "family": socket.AF_INET6 if six else socket.AF_INET}
    if r.fwmark is not None:
        spec["fwmark"] = r.fwmark
    if r.src:
        spec.update(src=r.src, src_len=128 if six else 32)
    if r.ipproto:
        spec["ip_proto"] = PROTO[r.ipproto]
    if r.sport is not None:
        spec["sport_range"] = f"{r.sport}:{r.sport}"
    return spec


def _nft(script: str, what: str) -> None:
    res = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        said = res.stderr.strip().splitlines()
        detail = [ln for ln in said if "Error" in ln] or said
        code = errno.EPERM if "Operation not permitted" in res.stderr else errno.EINVAL
        raise KernelError(what, code, detail[0] if detail else "")


def nft_listing(table: NftTable) -> str | None:
    # stateless (-s): the rules' counters move with traffic and must not read as a changed table
    res = subprocess.run(["nft", "-s", "list", "table", table.family, table.name], capture_output=True,
                         text=True,
                         check=False)
    return res.stdout if res.returncode == 0 else None


def _tc(args: list[str], what: str, *absent: str) -> bool:
    res = subprocess.run(["tc", *args], capture_output=True, text=True, check=False)
    if res.returncode == 0:
        return True
    if any(a in res.stderr for a in absent):
        return False
    raise KernelError(what, errno.EPERM if "permitted" in res.stderr else errno.EINVAL, res.stderr.strip())


def ensure(item: Item, before: Entry | None) -> tuple[Entry, bool]:
    """Make `item` true in the kernel. Returns its record entry and whether this call changed anything."""
    what = first_line(item)
    if isinstance(item, Sysctl):
        current = inspect.read_sysctl(item.key)
        if current is None:
            raise KernelError(what, errno.ENOENT, f"no {item.path} here")
        previous = before.previous if before else current
        if current == item.value:
            return Entry(item, True, previous), False
        _write_sysctl(item, item.value, what)
        return Entry(item, True, previous), True
    if isinstance(item, NftTable):
        existing = nft_listing(item)
        previous = before.previous if before else existing
        if before and before.item == item and existing is not None and existing == before.listing:
            return Entry(item, True, previous, existing), False     # untouched since our apply
        # one transaction: create-if-missing, delete, re-create with the plan's content
        _nft(f"table {item.family} {item.name}\ndelete table {item.family} {item.name}\n{item.nft()}", what)
        return Entry(item, True, previous, nft_listing(item)), existing != nft_listing(item)
    if isinstance(item, NftFastPath):
        nft = Nft()
        existing = fastpath_state.listing(nft, item.name)
        if before is not None:
            previous = before.previous
        else:   # a `netdev sheer` table sheer did not make: revert puts it back
            previous = nft.run(f"list table netdev {item.name}").out if existing is not None else None
        if before and before.item == item and existing is not None and existing == before.listing:
            return Entry(item, True, previous, existing), False     # untouched: keep what the feeder wrote
        fastpath_state.load(nft, item)
        return Entry(item, True, previous, fastpath_state.listing(nft, item.name)), True
    if isinstance(item, (Link, Address, BirdFragment)):
        created, previous, said, changed = announce.ensure(item, before.previous if before else None)
        return Entry(item, created or bool(before and before.created), previous, said), changed
    if isinstance(item, (Route, Rule)):
        with IPRoute() as ipr:
            if isinstance(item, Route):
                spec = _route_spec(ipr, item)
                changed = _netlink(what, lambda: ipr.route("add", **spec), errno.EEXIST)
            else:
                changed = _netlink(what, lambda: ipr.rule("add", **_rule_spec(item)), errno.EEXIST)
        return Entry(item, changed or bool(before and before.created)), changed
    if isinstance(item, TcClsact):
        changed = _tc(["qdisc", "add", "dev", item.dev, "clsact"], what, "File exists", "Exclusivity flag on")
        return Entry(item, changed or bool(before and before.created)), changed
    changed = _tc(item.commands()[0].split()[1:], what, "File exists")
    return Entry(item, changed or bool(before and before.created)), changed


def undo(entry: Entry) -> None:
    """Take back one applied entry; what is already gone is fine."""
    item = entry.item
    what = "revert " + first_line(item)
    if isinstance(item, Sysctl):
        if entry.previous is not None and inspect.read_sysctl(item.key) == item.value:
            _write_sysctl(item, entry.previous, what)
        return
    if not entry.created:
        return
    if isinstance(item, (Link, Address, BirdFragment)):
        announce.undo(item, entry.previous)
        return
    if isinstance(item, NftTable):
        head = f"table {item.family} {item.name}\ndelete table {item.family} {item.name}\n"
        _nft(head + (entry.previous or ""), what)
    elif isinstance(item, NftFastPath):
        res = fastpath_state.delete(Nft(), item.name, entry.previous)
        if not res.ok:
            code = errno.EPERM if "not permitted" in res.err else errno.EINVAL
            raise KernelError(what, code, res.first_error())
    elif isinstance(item, (Route, Rule)):
        gone = (errno.ENOENT, errno.ESRCH, errno.ENODEV)
        with IPRoute() as ipr:
            if isinstance(item, Route):
                try:
                    spec = _route_spec(ipr, item)
                except KernelError:
                    return
                _netlink(what, lambda: ipr.route("del", **spec), *gone)
            else:
                _netlink(what, lambda: ipr.rule("del", **_rule_spec(item)), *gone)
    elif isinstance(item, TcClsact):
        _tc(["qdisc", "del", "dev", item.dev, "clsact"], what, "Cannot find", "Invalid handle", "No such")
    else:
        _tc(["filter", "del", "dev", item.dev, "egress", "protocol", "ip", "prio", str(item.prio)], what,
            "Cannot find", "No such", "not find")


def _write_sysctl(item: Sysctl, value: str, what: str) -> None:
    try:
        with open(item.path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise KernelError(what, exc.errno or errno.EIO) from exc


# --- the verbs ------------------------------------------------------------------------------

def apply(plan: Plan, path: Path, meta: dict[str, Any]) -> list[str]:
    """Make the kernel match `plan`. On any failure, undo what this call did and re-raise."""
    record = Record.load(path)
    before = {key(e.item): e for e in record.entries} if record else {}
    wanted = {key(i) for i in plan.items}
    touched: list[tuple[Entry, Entry | None]] = []   # (new entry, entry it replaced) for rollback
    entries: list[Entry] = []
    report: list[str] = []
    try:
        for stale in reversed(record.entries if record else []):
            if key(stale.item) not in wanted:
                undo(stale)
                report.append(f"removed  {'; '.join(stale.item.commands())}")
        for item in plan.items:
            try:
                entry, changed = ensure(item, before.get(key(item)))
            except fastpath_state.Unavailable as exc:
                # an accelerator, not a requirement: the user-space path serves DSR without it
                report.append(f"skipped  {first_line(item)}: the kernel refused the fast path ({exc}); "
                              "DSR stays on sheer's user-space path")
                continue
            entries.append(entry)
            if changed:
                touched.append((entry, before.get(key(item))))
            said = f" ({entry.listing})" if isinstance(item, BirdFragment) and entry.listing else ""
            report.append(f"{'applied ' if changed else 'ok      '} {first_line(item)}{said}")
    except BaseException:
        for entry, replaced in reversed(touched):
            try:
                if isinstance(entry.item, NftTable) and replaced is not None:
                    undo(Entry(entry.item, True, replaced.listing))
                else:
                    undo(entry)
            except KernelError:
                pass
        raise
    Record(path, entries, meta).save()
    return report


def revert(path: Path) -> list[str] | None:
    record = Record.load(path)
    if record is None:
        return None
    report = []
    for entry in reversed(record.entries):
        undo(entry)
        report.append(f"{'reverted' if entry.created else 'kept    '} {first_line(entry.item)}")
    path.unlink()
    return report


def status(plan: Plan, path: Path) -> list[tuple[bool, str]]:
    record = Record.load(path)
    recorded = {key(e.item): e for e in record.entries} if record else {}
    facts = inspect.gather()
    out: list[tuple[bool, str]] = []
    for item in plan.items:
        line = first_line(item)
        if isinstance(item, Sysctl):
            value = inspect.read_sysctl(item.key)
            out.append((value == item.value, f"{line} (now {value})"))
        elif isinstance(item, Rule):
            out.append((rule_fact(item) in facts.rules, line))
        elif isinstance(item, Route):
            out.append((any(r.satisfies(route_fact(item)) for r in facts.routes), line))
        elif isinstance(item, NftTable):
            entry = recorded.get(key(item))
            listing = nft_listing(item)
            if listing is None:
                out.append((False, f"nft table {item.family} {item.name} is missing"))
            elif entry is None or entry.item != item:
                out.append((False, f"nft table {item.family} {item.name} was not applied from this plan"))
            else:
                out.append((listing == entry.listing, f"nft table {item.family} {item.name}"
                            + ("" if listing == entry.listing else " changed since apply")))
        elif isinstance(item, NftFastPath):
            entry = recorded.get(key(item))
            out.extend(fastpath_status(item, entry.listing if entry and entry.item == item else None))
        elif isinstance(item, TcClsact):
            res = subprocess.run(["tc", "qdisc", "show", "dev", item.dev], capture_output=True, text=True,
                                 check=False)
            out.append(("clsact" in res.stdout, line))
        elif isinstance(item, (Link, Address, BirdFragment)):
            out.append(announce.status(item, facts))
        else:
            res = subprocess.run(["tc", "filter", "show", "dev", item.dev, "egress"], capture_output=True,
                                 text=True, check=False)
            out.append((f"pref {item.prio} " in res.stdout, line))
    for k, entry in recorded.items():
        if entry.created and k not in {key(i) for i in plan.items}:
            out.append((False, f"applied but no longer planned: {first_line(entry.item)}"))
    return out


def first_line(item: Item) -> str:
    if isinstance(item, (NftTable, NftFastPath)):
        return f"nft table {item.family} {item.name}"
    return item.commands()[0]
