"""The table of a run as a chart: one bar per workload, sheer's advantage over nginx (sheer/nginx for
rates, nginx/sheer for memory, so longer is better everywhere), with the target and, where one is
known, the ceiling of the machine for that workload.

`python -m bench.chart RESULTS.json OUT.svg` redraws it from any results file; `python -m bench`
draws it after every run. Plain SVG, no external asset (fonts are the viewer's sans-serif)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

LEFT, BAR_W, ROW, TOP = 260, 460, 34, 58
WIDTH = LEFT + BAR_W + 90


@dataclass(frozen=True)
class Row:
    name: str
    advantage: float | None        # longer is better: sheer/nginx, or nginx/sheer for memory
    target: float                  # on the same scale
    ceiling: float | None
    met: bool | None


def rows(results: dict[str, Any]) -> list[Row]:
    out = []
    for w in results["workloads"]:
        ratio = w.get("ratio")
        flip = not w.get("higher_is_better", True)
        advantage = (1 / ratio if flip else ratio) if ratio else None
        target = 1 / w["target"] if flip else w["target"]
        out.append(Row(w["name"], advantage, target, w.get("ceiling"), w.get("meets")))
    return out


def svg(results: dict[str, Any]) -> str:
    found = rows(results)
    top = max([2.0, *(r.advantage or 0 for r in found), *(r.target for r in found),
               *(r.ceiling or 0 for r in found)]) * 1.1

    def x(v: float) -> float:
        return LEFT + BAR_W * min(v, top) / top

    height = TOP + ROW * len(found) + 52
    title = f"sheer against nginx 1.22, same lab, same run ({results.get('started', '?')})"
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="13">'),
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="12" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
           ('<text x="12" y="42" fill="#555">bar: how many times better sheer does (rate sheer/nginx; memory '
           'nginx/sheer); | target; ┆ ceiling of the machine</text>')]
    ticks = [t / 2 for t in range(int(top * 2) + 1)]
    for t in ticks:
        dash = "" if t == 1 else ' stroke-dasharray="2,3"'
        out.append(f'<line x1="{x(t):.1f}" y1="{TOP - 6}" x2="{x(t):.1f}" y2="{TOP + ROW * len(found)}" '
                   f'stroke="{"#333" if t == 1 else "#ccc"}"{dash}/>')
        out.append(f'<text x="{x(t):.1f}" y="{TOP + ROW * len(found) + 16}" text-anchor="middle" '
                   f'fill="#555">{t:g}×</text>')
    for i, r in enumerate(found):
        y = TOP + i * ROW
        out.append(f'<text x="{LEFT - 10}" y="{y + 19}" text-anchor="end">{escape(r.name)}</text>')
        if r.advantage is None:
            out.append(f'<text x="{LEFT + 6}" y="{y + 19}" fill="#a00">no result</text>')
        else:
            color = "#2e7d32" if r.met else "#c62828" if r.met is False else "#777"
            out.append(f'<rect x="{LEFT}" y="{y + 6}" width="{x(r.advantage) - LEFT:.1f}" '
                       f'height="{ROW - 14}" fill="{color}" opacity="0.8"/>')
            out.append(f'<text x="{x(r.advantage) + 6:.1f}" y="{y + 19}">{r.advantage:.2f}×</text>')
        out.append(f'<line x1="{x(r.target):.1f}" y1="{y + 2}" x2="{x(r.target):.1f}" y2="{y + ROW - 4}" '
                   'stroke="black" stroke-width="2"/>')
        if r.ceiling:
            out.append(f'<line x1="{x(r.ceiling):.1f}" y1="{y + 2}" x2="{x(r.ceiling):.1f}" '
                       f'y2="{y + ROW - 4}" stroke="#1565c0" stroke-width="2" stroke-dasharray="3,2"/>')
    legend = TOP + ROW * len(found) + 38
    out.append(f'<text x="12" y="{legend}" fill="#555">green: target met; red: missed; '
               'blue dashed: the ceiling docs/performance.md computes for the workload</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg(results))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.chart RESULTS.json OUT.svg", file=sys.stderr)
        return 2
    try:
        results = json.loads(Path(argv[0]).read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"bench.chart: {argv[0]}: {e}", file=sys.stderr)
        return 1
    write(results, Path(argv[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
