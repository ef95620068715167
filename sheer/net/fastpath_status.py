"""`sheer net status` for the fast path: is the table as applied, how full is each map, who feeds
it, and what the kernel steered to each upstream server."""

from __future__ import annotations

from sheer.core.balancers.maglev import table_size
from sheer.net import fastpath_state
from sheer.net.fastpath import NftFastPath, describe
from sheer.net.nftlib import Nft


def fastpath_status(item: NftFastPath, recorded: str | None) -> list[tuple[bool, str]]:
    nft = Nft()
    try:
        return _status(nft, item, recorded)
    finally:
        nft.close()


def _status(nft: Nft, item: NftFastPath, recorded: str | None) -> list[tuple[bool, str]]:
    now = fastpath_state.listing(nft, item.name)
    head = f"nft table netdev {item.name} (fast path: ingress hook on {item.dev})"
    if now is None:
        missing = (f"nft table netdev {item.name} is missing: the kernel steers nothing and sheer's "
                   "user-space path answers (`sheer net apply` puts it back)")
        return [(False, missing)]
    if recorded is None:
        out = [(False, f"{head} was not applied from this plan")]
    elif now != recorded:
        out = [(False, f"{head} changed since apply")]
    else:
        out = [(True, head)]
    counted = fastpath_state.counters(item.name)
    for s in item.services:
        filled = fastpath_state.filled(nft, item.name, s.map)
        where = f"fast path {s.vip}:{s.port} udp -> upstream {s.upstream} ({describe(s)})"
        if filled is None:
            out.append((False, f"{where}: map {s.map} is missing"))
            continue
        if s.method is not None and s.method.expr == "jhash":
            size = table_size(sum(srv.weight for srv in s.servers if not srv.backup))
            state = f"{filled} of {size} slots filled"
        else:
            state = f"{filled} entries"
        if filled == 0:
            state += " (no live upstream: every datagram goes to sheer's user-space path)"
        out.append((True, f"{where}: {state}"))
        for srv in s.servers:
            c = counted.get(srv.counter)
            if c is not None:
                line = f"  {srv.name}: {c.packets} datagrams, {c.bytes} bytes steered by the kernel"
                out.append((True, line))
    pids = fastpath_state.feeders()
    if pids:
        feeding = (f"fed by sheer's health checker (pid {', '.join(map(str, pids))}): health checks, "
                   "reloads and API changes reach the kernel's table")
    else:
        feeding = ("no running sheer in this namespace feeds it: the table stays as `sheer net apply` "
                   "wrote it (every server up) until sheer runs")
    out.append((True, feeding))
    return out
