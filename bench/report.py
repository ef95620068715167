"""The results as a table (for people and docs/performance.md) and as JSON (for machines)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.runner import Result


def _rate(m: dict[str, Any] | None) -> str:
    if not m:
        return "-"
    r = m["rate"]
    return f"{r:,.2f} {m['unit']}" if r < 100 else f"{r:,.0f} {m['unit']}"


def _pct(m: dict[str, Any] | None, key: str) -> str:
    return "-" if not m or m.get(key) is None else f"{m[key]:.2%}" if key == "loss" else f"{m[key]:.0%}"


def _lat(m: dict[str, Any] | None) -> str:
    if not m or not m["latency_ms"]:
        return "-"
    lat = m["latency_ms"]
    return "/".join(f"{lat[k]:.2f}" for k in ("p50", "p90", "p99") if k in lat)


def _verdict(r: Result) -> str:
    ratio = r.ratio()
    w = r.workload
    if w.routing:
        return f"**{ratio:.2f}×** (no proxy: the most any proxy can reach here)" if ratio else "**n/a**"
    sign = "≥" if w.higher_is_better else "≤"
    target = f"{sign} {w.target:g}×" + (f" {w.target_note}" if w.target_note else "")
    if ratio is None:
        return f"**{'n/a'}** (target {target})"
    ok = w.meets(ratio)
    if ok and "loss" in w.target_note:
        m = r.median("sheer")
        ok = bool(m and m["loss"] < 0.001)
    if ok:
        return f"**{ratio:.2f}×** (target {target}: met)"
    short = (1 - ratio / w.target) if w.higher_is_better else (ratio / w.target - 1)
    return f"**{ratio:.2f}×** (target {target}: missed" + (f" by {short:.0%})" if short > 0 else ", loss)")


def table(results: list[Result]) -> str:
    head = ("| workload | nginx | sheer | sheer/nginx | loss n / s | latency ms p50/p90/p99 nginx | "
            "latency ms p50/p90/p99 sheer | proxy CPU n / s | host busy n / s |")
    rows = [head, "|" + "---|" * 9]
    for r in results:
        n, s = r.median("nginx"), r.median("sheer")
        rows.append(f"| {r.workload.name}: {r.workload.title} | {_rate(n)} | {_rate(s)} | {_verdict(r)} | "
                    f"{_pct(n, 'loss')} / {_pct(s, 'loss')} | {_lat(n)} | {_lat(s)} | "
                    f"{_pct(n, 'cpu')} / {_pct(s, 'cpu')} | "
                    f"{_pct(n, 'host_busy')} / {_pct(s, 'host_busy')} |")
    return "\n".join(rows)


def write_json(results: list[Result], path: Path, meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = [r.as_json() for r in results]
    # the ceiling measured in this run (no proxy, plain routing) is the ceiling of the DSR workloads
    # that have none computed (the kernel fast path's: docs/performance.md)
    measured = next((r.ratio() for r in results if r.workload.routing), None)
    for r, data in zip(results, out, strict=True):
        if r.workload.routing:
            data["meets"] = None
        elif measured and r.workload.method.startswith("dsr-") and data.get("ceiling") is None:
            data["ceiling"] = measured
    path.write_text(json.dumps({**meta, "workloads": out}, indent=2) + "\n")
