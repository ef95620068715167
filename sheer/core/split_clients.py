"""Looking a `split_clients` up (ngx_http_split_clients_variable): MurmurHash2 of the string, then the
first part whose bound is above it (or `*`), else ""."""

from __future__ import annotations

from sheer.config.computed import Split
from sheer.core.variables import VariableSource, render

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur_hash2(data: bytes) -> int:
    """nginx's ngx_murmur_hash2 (seed 0, little-endian words)."""
    length = len(data)
    h = length & _MASK
    whole = length - length % 4
    for offset in range(0, whole, 4):
        k = int.from_bytes(data[offset:offset + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length - whole
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


class SplitTable:
    __slots__ = ("split", "volatile")

    def __init__(self, split: Split) -> None:
        self.split = split
        self.volatile = False

    def evaluate(self, source: VariableSource) -> str:
        hashed = murmur_hash2(render(self.split.string, source).encode("latin-1", "replace"))
        for bound, value in self.split.parts:
            if hashed < bound or bound == 0:
                return value
        return ""
