"""python -m bench [--workload NAME ...] [--runs N] [--duration S] [--json PATH]"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import signal
import sys
import time
from pathlib import Path

from bench import chart, fleet, profile, report, runner, upstreams, workloads
from sheer.lab import fleet as fleet_lab
from sheer.lab.errors import LabError
from sheer.lab.testing import Lab, shared_lab, unsupported_reason

DEFAULT_JSON = Path("bench/results/latest.json")
FULL_CHART = Path("docs/bench.svg")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("-w", "--workload", action="append", metavar="NAME",
                   help="workload or group (repeat or comma-separate): "
                        + ", ".join([w.name for w in workloads.WORKLOADS] + list(workloads.GROUPS))
                        + "; fleet (sheer with 2 proxies against 1, alone)")
    p.add_argument("-n", "--runs", type=int, default=3, help="runs per proxy, interleaved (default 3)")
    p.add_argument("-d", "--duration", type=float, default=5.0, help="seconds per measured run (default 5)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON,
                   help=f"where to write results (default {DEFAULT_JSON})")
    p.add_argument("--chart", type=Path, help=f"where to draw the chart (default: {FULL_CHART} after a run "
                   "of every workload, else beside the JSON)")
    p.add_argument("--only", choices=runner.KINDS, help="run one proxy only (no ratios)")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="py-spy sheer's workers during its runs, collapsed stacks into DIR (slows sheer a "
                        "little)")
    p.add_argument("--keep-lab", action="store_true", help="leave the bench servers running afterwards")
    args = p.parse_args(argv)
    if args.runs < 1 or not 0.5 <= args.duration <= 120:
        p.error("--runs must be >= 1 and --duration within 0.5..120 seconds")
    return args


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    # finally blocks stop the proxy and revert the plumbing on Ctrl-C or SIGTERM, even when run
    # in the background (where a shell makes SIGINT ignored); the caller's handlers come back after
    # (the CI smoke test runs this inside pytest).
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        return _main(argv)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _main(argv: list[str] | None) -> int:
    args = parse(argv)
    names = [n for item in args.workload or [] for n in item.split(",") if n]
    if "fleet" in names:
        return _fleet(args, names)
    try:
        chosen = workloads.select(names)
    except KeyError as exc:
        print(f"bench: {exc.args[0]}", file=sys.stderr)
        return 2
    reason = unsupported_reason()
    if reason:
        print(f"bench: {reason}", file=sys.stderr)
        return 2
    # proxies inherit it: 10,000 idle connections need 20,000 descriptors (nginx would set
    # worker_rlimit_nofile, which sheer does not implement; the soft limit up to the hard one does both)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    lab = Lab()
    kinds = (args.only,) if args.only else runner.KINDS
    started = time.time()
    # The lab is taken down afterwards when this run brought it up and nobody else uses it.
    with contextlib.nullcontext(lab) if args.keep_lab else shared_lab(lab):
        try:
            upstreams.ensure(lab)
            print(f"bench: {len(chosen)} workload(s) x {args.runs} runs x {len(kinds)} proxies, "
                  f"{args.duration:g}s each", file=sys.stderr)
            results = runner.run_all(lab, chosen, args.runs, args.duration, kinds, profile_dir=args.profile)
        except LabError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
        finally:
            if not args.keep_lab:
                upstreams.stop(lab)
    meta = {
        "command": "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "runs": args.runs, "duration": args.duration, "workers": workloads.WORKERS,
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    report.write_json(results, args.json, meta)
    everything = {r.workload.name for r in results} == {w.name for w in workloads.WORKLOADS}
    chart_path = args.chart or (FULL_CHART if everything and not args.only else args.json.with_suffix(".svg"))
    chart.write(json.loads(args.json.read_text()), chart_path)
    print(report.table(results))
    if args.profile:
        for r in results:
            files = sorted(args.profile.glob(f"{r.workload.name}-*.txt"))
            if files:
                print("\n## py-spy, sheer workers, "
                      f"{r.workload.name}\n\n```\n{profile.summary(files, 15)}\n```")
    print(f"\n{meta['seconds']:.0f}s; JSON: {args.json}; chart: {chart_path}", file=sys.stderr)
    complete = all(r.samples[k] for r in results for k in kinds)
    return 0 if complete else 1


def _fleet(args: argparse.Namespace, names: list[str]) -> int:
    """`--workload fleet`: its own comparison (bench.fleet), not sheer against nginx."""
    if names != ["fleet"]:
        print("bench: the fleet workload runs alone (--workload fleet)", file=sys.stderr)
        return 2
    reason = unsupported_reason()
    if reason:
        print(f"bench: {reason}", file=sys.stderr)
        return 2
    lab = Lab()
    with contextlib.nullcontext(lab) if args.keep_lab else shared_lab(lab):
        try:
            print(f"bench: fleet x {args.runs} runs x 2 modes, {args.duration:g}s each", file=sys.stderr)
            out = args.json if args.json != DEFAULT_JSON else fleet.DEFAULT_JSON
            return fleet.main(lab, args.runs, args.duration, out)
        except LabError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
        finally:
            if not args.keep_lab:
                fleet_lab.remove(lab.state_dir)
                upstreams.stop(lab)
