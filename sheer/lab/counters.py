"""Kernel counters of a node (/proc/net/snmp as its namespace sees it): which way packets went."""

from __future__ import annotations

from sheer.lab.procs import netns_exec

WATCHED = ("Ip.ForwDatagrams", "Ip.InReceives", "Ip.OutRequests", "Udp.InDatagrams", "Udp.OutDatagrams",
           "Tcp.ActiveOpens")


def snmp(netns: str) -> dict[str, int]:
    """{"Ip.ForwDatagrams": n, "Udp.InDatagrams": n, ...} for one namespace."""
    lines = netns_exec(netns, "cat", "/proc/net/snmp").stdout.splitlines()
    values: dict[str, int] = {}
    # the file alternates a header line and a value line per protocol
    for header, row in zip(lines[::2], lines[1::2]):
        proto, *names = header.split()
        _, *numbers = row.split()
        for name, number in zip(names, numbers):
            values[f"{proto.rstrip(':')}.{name}"] = int(number)
    # IPv6's are one "Udp6InDatagrams  12" per line, kept under their own names
    for line in netns_exec(netns, "cat", "/proc/net/snmp6").stdout.splitlines():
        name, _, number = line.partition(" ")
        if number.strip().isdigit():
            values[name] = int(number)
    return values


def delta(before: dict[str, int], after: dict[str, int], keys: tuple[str, ...] = WATCHED) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys}
