"""Two nf_tables reads straight over netlink: a table's handle and a table's named counters.

`nft list ...` (and libnftables) fills its cache with every set and its elements before it answers
any listing; with a 65537-entry Maglev map that is about a second of CPU per read. The feeder reads
the counters every second, so it asks the kernel itself: one NFT_MSG_GETOBJ dump filtered by table
and type (net/netfilter/nf_tables_api.c), one NFT_MSG_GETTABLE dump, ~1 ms each.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETTABLE = 1
NFT_MSG_GETOBJ = 19
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFPROTO = {"inet": 1, "ip": 2, "netdev": 5, "ip6": 10}
NFTA_TABLE_NAME, NFTA_TABLE_HANDLE = 1, 4
NFTA_OBJ_TABLE, NFTA_OBJ_NAME, NFTA_OBJ_TYPE, NFTA_OBJ_DATA = 1, 2, 3, 4
NFT_OBJECT_COUNTER = 1
NFTA_COUNTER_BYTES, NFTA_COUNTER_PACKETS = 1, 2
NLA_TYPE_MASK = 0x3FFF


class NetlinkError(OSError):
    pass


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    at = 0
    while at + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, at)
        if length < 4:
            return
        yield kind & NLA_TYPE_MASK, data[at + 4:at + length]
        at += (length + 3) & ~3


def _dump(message: int, family: str, attrs: bytes) -> Iterator[dict[int, bytes]]:
    """Each answer's attributes (after the 4-byte nfgenmsg) of one NLM_F_DUMP request."""
    kind = (NFNL_SUBSYS_NFTABLES << 8) | message
    body = struct.pack("=BBH", NFPROTO[family], 0, 0) + attrs
    seq = 1
    header = struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        sock.bind((0, 0))
        sock.send(header + body)
        while True:
            data = sock.recv(1 << 16)
            at = 0
            while at + 16 <= len(data):
                length, got, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, at)
                if got == NLMSG_DONE:
                    return
                if got == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, at + 16)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return
                yield dict(_attrs(data[at + 20:at + length]))
                at += (length + 3) & ~3


def table_handle(name: str, family: str = "netdev") -> int | None:
    """The table's handle (a new one whenever the table is made again), None when there is none."""
    for attrs in _dump(NFT_MSG_GETTABLE, family, b""):
        if attrs.get(NFTA_TABLE_NAME, b"").rstrip(b"\0").decode() == name:
            return int(struct.unpack(">Q", attrs[NFTA_TABLE_HANDLE])[0])
    return None


def counters(table: str, family: str = "netdev") -> dict[str, tuple[int, int]]:
    """Named counter -> (packets, bytes) of one table."""
    request = (_attr(NFTA_OBJ_TABLE, table.encode() + b"\0")
               + _attr(NFTA_OBJ_TYPE, struct.pack(">I", NFT_OBJECT_COUNTER)))
    out = {}
    try:
        for attrs in _dump(NFT_MSG_GETOBJ, family, request):
            if struct.unpack(">I", attrs.get(NFTA_OBJ_TYPE, b"\0\0\0\0"))[0] != NFT_OBJECT_COUNTER:
                continue
            values = dict(_attrs(attrs.get(NFTA_OBJ_DATA, b"")))
            name = attrs.get(NFTA_OBJ_NAME, b"").rstrip(b"\0").decode()
            if (attrs.get(NFTA_OBJ_TABLE, b"").rstrip(b"\0").decode() or table) != table:
                continue
            out[name] = (struct.unpack(">Q", values.get(NFTA_COUNTER_PACKETS, bytes(8)))[0],
                         struct.unpack(">Q", values.get(NFTA_COUNTER_BYTES, bytes(8)))[0])
    except NetlinkError as exc:
        if exc.errno != errno.ENOENT:
            raise
    return out
