"""Optional: py-spy on sheer's workers while a measured run lasts (`python -m bench --profile DIR`).

Each worker gets a collapsed-stack file (py-spy's "raw" format, flamegraph.pl input); `summary`
turns them into the functions that hold the most samples, by self time and including callees."""

from __future__ import annotations

import collections
import shutil
import subprocess
from pathlib import Path

from bench import procstat


def available() -> str | None:
    venv = Path(__file__).resolve().parents[1] / ".venv/bin/py-spy"
    return shutil.which("py-spy") or (str(venv) if venv.exists() else None)


def start(pid: int, seconds: float, out: Path, name: str) -> list[subprocess.Popen[bytes]]:
    """py-spy record on every worker (the master's children), non-blocking, 200 Hz."""
    spy = available()
    if spy is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy")
    out.mkdir(parents=True, exist_ok=True)
    procs = []
    for worker in procstat.tree(pid)[1:]:
        procs.append(subprocess.Popen([spy, "record", "--nonblocking", "-r", "200", "-d",
                                       f"{max(1, round(seconds))}",
                                       "-f", "raw", "-o", str(out / f"{name}-{worker}.txt"), "-p",
                                       str(worker)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def wait(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=5)


def summary(files: list[Path], top: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for path in files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            samples += n
            own[frames[-1]] += n
            for frame in set(frames):
                total[frame] += n
    lines = [f"{samples} samples", "self:"]
    lines += [f"  {n / samples:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["including callees:"]
    lines += [f"  {n / samples:6.1%}  {f}" for f, n in total.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(summary([Path(p) for p in sys.argv[1:]]))
