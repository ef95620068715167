"""bench.chart: the table of a run as an SVG bar chart, longer is better for every workload, with the
target and the ceiling; valid SVG that rsvg-convert renders."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench import chart

RESULTS = {"started": "2026-12-07T03:00:00+0000", "workloads": [
    {"name": "dns-dsr-router", "ratio": 1.28, "target": 1.5, "higher_is_better": True, "meets": False,
     "ceiling": 1.55},
    {"name": "bulk", "ratio": 1.91, "target": 0.9, "higher_is_better": True, "meets": True, "ceiling": None},
    {"name": "mem-tcp", "ratio": 0.21, "target": 2.0, "higher_is_better": False, "meets": True},
    {"name": "tcp-new", "ratio": None, "target": 0.9, "higher_is_better": True, "meets": None},
]}
SVG = "{http://www.w3.org/2000/svg}"


def test_memory_is_drawn_the_other_way_up() -> None:
    rows = {r.name: r for r in chart.rows(RESULTS)}
    assert rows["dns-dsr-router"].advantage == 1.28 and rows["dns-dsr-router"].ceiling == 1.55
    assert rows["mem-tcp"].advantage == pytest.approx(1 / 0.21) and rows["mem-tcp"].target == 0.5
    assert rows["tcp-new"].advantage is None


def test_one_bar_per_result_coloured_by_its_verdict() -> None:
    root = ET.fromstring(chart.svg(RESULTS))
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("opacity")]
    assert [b.get("fill") for b in bars] == ["#c62828", "#2e7d32", "#2e7d32"]
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "1.28×" in texts and "no result" in texts and "4.76×" in texts
    # the bars grow with the advantage, on one scale
    widths = [float(b.get("width", 0)) for b in bars]
    assert widths[0] < widths[1] < widths[2]
    dashed = [ln for ln in root.iter(f"{SVG}line") if ln.get("stroke") == "#1565c0"]
    assert len(dashed) == 1                     # one known ceiling


@pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="rsvg-convert is not installed (make deps)")
def test_renders_with_rsvg_convert(tmp_path: Path) -> None:
    source = tmp_path / "bench.svg"
    chart.write(RESULTS, source)
    png = tmp_path / "bench.png"
    done = subprocess.run(["rsvg-convert", "-o", str(png), str(source)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0 and not done.stderr, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line(tmp_path: Path) -> None:
    assert chart.main([str(tmp_path / "missing.json"), str(tmp_path / "out.svg")]) == 1
    assert chart.main([]) == 2


def test_ipv6_dsr_workloads() -> None:
    from bench import workloads

    six = workloads.by_name("dns-dsr6-router")
    assert six.ipv6 and "listen [::]:53 udp reuseport;" in six.config_for("sheer")
    assert "server [fd00:16::21]:53;" in six.config_for("sheer")
    assert "proxy_bind $remote_addr:$remote_port transparent;" in six.config_for("sheer")
    assert "proxy_bind [$remote_addr]:$remote_port transparent;" in six.config_for("nginx")
    assert [w.name for w in workloads.select(["dns-dsr6"])] == list(workloads.DSR6_GROUP)
