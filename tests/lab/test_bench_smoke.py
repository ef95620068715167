"""The benchmark harness, for a few seconds, so it cannot rot: it runs, measures something and
writes its JSON. Speeds are never asserted (the lab shares two cores with everything else)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import cli
from sheer.lab.testing import Lab

pytestmark = pytest.mark.lab


def test_bench_dns_and_tcp_smoke(lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    status = cli.main(["--workload", "dns-dsr-router,dns-ceiling,tcp-keepalive", "--runs", "1",
                       "--duration", "1", "--json", str(out)])
    table = capsys.readouterr().out
    assert status == 0, table
    report = json.loads(out.read_text())
    assert [w["name"] for w in report["workloads"]] == ["dns-dsr-router", "dns-ceiling", "tcp-keepalive"]
    for workload in report["workloads"]:
        for kind in ("nginx", "sheer"):
            median = workload["median"][kind]
            assert median["runs"] == 1 and median["rate"] > 0, (workload["name"], kind, median)
            assert median["latency_ms"], (workload["name"], kind)
        assert workload["ratio"] > 0
    assert "dns-dsr-router" in table and "sheer/nginx" in table
    # the ceiling (no proxy, plain routing) measured in the same run is the DSR workload's ceiling
    ceiling = report["workloads"][1]
    assert report["workloads"][0]["ceiling"] == ceiling["ratio"] and ceiling["meets"] is None
