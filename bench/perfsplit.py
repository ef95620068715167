"""Split a `perf record -a -g` profile of some processes into user time and system calls.

    perf record -a -g -F 999 -o perf.data -- sleep 5      # while a benchmark run is going
    perf script -i perf.data | python -m bench.perfsplit PID[,PID...]

Prints, for the given processes, the share of their samples in user space and under each system
call (the outermost `__x64_sys_*` frame of the kernel stack), largest first. On veth a send()
also carries the receiver's delivery, so this is where a proxy's kernel time goes.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Iterable, Iterator


def samples(lines: Iterable[str]) -> Iterator[list[str]]:
    """perf script's output: a header line, then one frame per line, a blank line between samples."""
    block: list[str] = []
    for line in lines:
        if line.strip():
            block.append(line.rstrip("\n"))
        elif block:
            yield block
            block = []
    if block:
        yield block


def where(block: list[str]) -> str:
    """The system call a sample sits under, "user", or "kernel" (interrupts, scheduling)."""
    symbols = [parts[1].split("+")[0] for parts in (line.split(None, 2) for line in block[1:])
               if len(parts) > 1]
    for symbol in reversed(symbols):
        for prefix in ("__x64_sys_", "__do_sys_"):
            if symbol.startswith(prefix):
                return symbol[len(prefix):]
        if symbol in ("ksys_write", "ksys_read"):
            return symbol[5:]
    kernel = any("[kernel" in line for line in block[1:2])
    return "kernel" if kernel else "user"


def split(lines: Iterable[str], pids: set[str]) -> tuple[int, collections.Counter[str]]:
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for block in samples(lines):
        header = block[0].split()
        pid = next((token for token in header[:3] if token.isdigit()), None)
        if pid in pids:
            total += 1
            counts[where(block)] += 1
    return total, counts


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    total, counts = split(sys.stdin, set(argv[0].split(",")))
    if not total:
        print("no samples of those processes", file=sys.stderr)
        return 1
    print(f"{total} samples")
    for name, n in counts.most_common(20):
        print(f"{100 * n / total:6.2f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
