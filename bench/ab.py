"""Two builds of sheer, A and B, on the same workloads, interleaved (A B, B A, A B, ...): what one
change costs or saves. Each side runs `python -m bench --only sheer` from its own checkout (its own
`.venv`, made by `make venv` there), one run per workload and round; the report is the median of
the proxy's CPU time per request or datagram (user+system of master and workers, from /proc,
divided by what it served) and of the rate, per side, and B against A.

    git worktree add /tmp/before COMMIT && make -C /tmp/before venv
    python -m bench.ab --a /tmp/before --b . -w dns-dsr-router-user,dns-proxied,tcp-keepalive,http -n 9

CPU per operation is steadier than the rate on a noisy machine: it does not depend on how fast
the load generator and the upstreams were in that run."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Side:
    name: str
    checkout: Path
    cpu_per_op: dict[str, list[float]] = field(default_factory=dict)    # workload -> µs per op, per run
    rate: dict[str, list[float]] = field(default_factory=dict)

    @property
    def python(self) -> Path:
        return self.checkout / ".venv" / "bin" / "python"

    def record(self, results: dict[str, Any]) -> None:
        for w in results["workloads"]:
            for s in w["samples"]["sheer"]:
                if s["rate"] > 0:
                    self.cpu_per_op.setdefault(w["name"], []).append(s["cpu"] / s["rate"] * 1e6)
                    self.rate.setdefault(w["name"], []).append(s["rate"])


def run_side(side: Side, workloads: str, duration: float, out: Path) -> None:
    cmd = [str(side.python), "-m", "bench", "--only", "sheer", "-w", workloads, "-n", "1",
           "-d", f"{duration:g}", "--json", str(out)]
    done = subprocess.run(cmd, cwd=side.checkout, check=False, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode not in (0, 1) or not out.exists():
        raise SystemExit(f"bench.ab: {side.name} ({side.checkout}) failed:\n{done.stderr[-2000:]}")
    side.record(json.loads(out.read_text()))


def report(a: Side, b: Side) -> str:
    rows = ["| workload | A: CPU µs/op | B: CPU µs/op | B/A CPU | A: rate | B: rate | B/A rate | runs |",
            "|---|---|---|---|---|---|---|---|"]
    for name in a.cpu_per_op:
        ca, cb = statistics.median(a.cpu_per_op[name]), statistics.median(b.cpu_per_op.get(name, [0.0]))
        ra, rb = statistics.median(a.rate[name]), statistics.median(b.rate.get(name, [0.0]))
        # a proxy that did no work (the kernel's fast path steered every datagram) has no CPU per op
        cpu = f"{cb / ca:.3f}" if ca > 0 else "n/a (A used no CPU)"
        runs = f"{len(a.cpu_per_op[name])} / {len(b.cpu_per_op.get(name, []))}"
        rows.append(f"| {name} | {ca:.2f} | {cb:.2f} | {cpu} | {ra:,.0f} | {rb:,.0f} | "
                    f"{rb / ra if ra else 0:.3f} | {runs} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", type=Path, required=True, help="checkout of build A (with its .venv)")
    p.add_argument("--b", type=Path, required=True, help="checkout of build B (with its .venv)")
    p.add_argument("-w", "--workload", required=True, help="workloads, comma-separated")
    p.add_argument("-n", "--runs", type=int, default=9, help="runs per side (default 9)")
    p.add_argument("-d", "--duration", type=float, default=5.0)
    p.add_argument("--keep", type=Path, help="keep every run's JSON in this directory")
    args = p.parse_args(argv)
    sides = [Side("A", args.a.resolve()), Side("B", args.b.resolve())]
    for side in sides:
        if not side.python.exists():
            p.error(f"{side.python} does not exist: run `make venv` in {side.checkout}")
    with tempfile.TemporaryDirectory(prefix="sheer-ab-") as scratch:
        tmp = args.keep or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        for round_ in range(args.runs):
            order = sides if round_ % 2 == 0 else sides[::-1]
            for side in order:
                run_side(side, args.workload, args.duration, Path(tmp) / f"{side.name}-{round_}.json")
                print(f"bench.ab: round {round_ + 1}/{args.runs} {side.name} done", file=sys.stderr,
                      flush=True)
    print(report(*sides))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
