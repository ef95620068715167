"""What `sheer trace` says about the DSR fast path: where it steers, and why tcpdump there shows the
datagram before the rewrite (a packet tap sees what the driver received, before the netdev ingress
hook rewrites it; the rewritten datagram appears leaving towards the upstream)."""

from __future__ import annotations

import re
import subprocess

from sheer.doctor.capture import Spot, _in


def steering(where: list[Spot]) -> dict[str, str]:
    """node -> the interface whose ingress hook the fast path (`table netdev sheer`) uses there."""
    found = {}
    for spot in where:
        node = spot.node
        try:
            res = subprocess.run(_in(spot, "nft", "-t", "list", "chain", "netdev", "sheer", "ingress"),
                                 capture_output=True, text=True, check=False, timeout=10)
        except (FileNotFoundError, subprocess.TimeoutExpired):
            continue
        dev = re.search(r'hook ingress device "?([^"\s]+)"?', res.stdout) if res.returncode == 0 else None
        if dev and "daddr set" in res.stdout:
            found[node] = dev.group(1)
    return found


def notes(steered: dict[str, str]) -> list[str]:
    return [f"{node}: the kernel's DSR fast path steers on {dev} (nft netdev ingress, table netdev sheer): "
            f"tcpdump on {dev} sees each datagram as the client sent it, before the rewrite; the rewritten "
            "one (to the upstream) is the one leaving towards the upstreams, and sheer's sockets never see it"
            for node, dev in steered.items()]
