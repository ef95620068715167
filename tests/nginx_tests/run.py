"""`make nginx-tests`: nginx's own test suite (../shared/nginx-tests) against sheer and against Debian's
nginx 1.22, in one run, inside a private network namespace; the per-file table goes to
docs/nginx-tests.md.

    .venv/bin/python tests/nginx_tests/run.py [--subset ci] [--jobs 2] [--files a.t b.t] [--out FILE]

Each .t file runs as nginx's README says (TEST_NGINX_BINARY), once per binary, through a shim that
gives both the same `-V` module view (configure-arguments), so both run the same files and skip the
same ones. The namespace `<lab>-nt` (SHEER_LAB) has only `lo`; it is removed at the end, on failure
and on SIGTERM too, after whatever still runs in it (processes this run started) is killed by PID.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import report
import tap

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _suite() -> Path:
    """NGINX_TESTS, else ../shared/nginx-tests beside the checkout, else the development machine's copy
    (a CI checkout may live anywhere)."""
    if "NGINX_TESTS" in os.environ:
        return Path(os.environ["NGINX_TESTS"])
    places = (ROOT.parent / "shared" / "nginx-tests", Path("/work/shared/nginx-tests"))
    return next((p for p in places if (p / "lib" / "Test" / "Nginx.pm").exists()), places[0])


SUITE = _suite()
NGINX = os.environ.get("NGINX_BINARY", "/usr/sbin/nginx")
FILE_TIMEOUT = 300.0      # one file, one binary; Test::Nginx itself waits up to 90 s for a stop
LAB = re.compile(r"^sheer[a-z0-9]{0,4}$")

# CI's fixed subset: one or more files of every claimed module, chosen to cover each of them in a few
# minutes (the full claimed set is `make nginx-tests`).
CI_SUBSET = (
    "stream_proxy.t", "stream_upstream.t", "stream_upstream_hash.t", "stream_upstream_least_conn.t",
    "stream_upstream_random.t", "stream_udp_proxy.t", "stream_proxy_next_upstream.t",
    "stream_proxy_protocol.t", "stream_realip.t", "stream_variables.t", "stream_access_log.t",
    "proxy.t", "proxy_keepalive.t", "proxy_next_upstream.t", "upstream_keepalive.t", "upstream_zone.t",
    "http_server_name.t", "http_location.t", "stub_status.t", "access_log.t", "index.t", "not_modified.t",
    "range_if_range.t",
)


def lab_name() -> str:
    lab = os.environ.get("SHEER_LAB", "sheer").lower()
    if not LAB.match(lab):
        raise SystemExit(f"SHEER_LAB={lab!r}: a lab name is 'sheer' and at most 4 lowercase letters or "
                         "digits")
    return lab


@contextmanager
def namespace(name: str) -> Iterator[str]:
    """A network namespace with only `lo`, up; removed afterwards whatever happens."""
    if name in _namespaces():  # left by a run that was killed: ours (same lab), start afresh
        _remove(name)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        _remove(name)


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _remove(name: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False).stdout
    for pid in pids.split():
        try:
            os.kill(int(pid), signal.SIGKILL)   # only this run's processes live in this namespace
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "delete", name], check=False)


def binaries() -> dict[str, dict[str, str]]:
    """The environment each binary's run gets."""
    # The suite expects to run unprivileged; run as root (for the namespace), nginx's workers would
    # become nobody and could not read the 0700 test directory: both binaries keep root's workers.
    common = {"TMPDIR": "", "TEST_NGINX_LEAVE": "1", "TEST_NGINX_GLOBALS": "user root;"}
    return {
        "sheer": {**common, "TEST_NGINX_BINARY": str(HERE / "sheer-shim"),
                  "SHEER_PYTHON": os.environ.get("SHEER_PYTHON", str(ROOT / ".venv" / "bin" / "python"))},
        "nginx": {**common, "TEST_NGINX_BINARY": str(HERE / "nginx-shim"), "NGINX_BINARY": NGINX,
                  "TEST_NGINX_MODULES": "/usr/lib/nginx/modules"},
    }


_HAS = re.compile(r"has\((?:qw/([^/]*)/|'([^']*)')\)")
_AVAILABLE = ('use lib "lib"; use Test::Nginx; my $t = bless {}, "Test::Nginx"; '
              'print "$_ ", ($t->has_module($_) || $t->has_feature($_)) ? 1 : 0, "\\n" for @ARGV;')


def claims(files: list[str]) -> dict[str, list[str]]:
    """For each file, what its has() calls ask for that sheer's module view lacks, as Test::Nginx itself
    decides it (has_module, has_feature) from the shim's -V: a file asking for nothing missing is a file
    of the modules sheer claims."""
    named = {file: [word for found in _HAS.findall((SUITE / file).read_text(errors="replace"))
                    for word in " ".join(found).split()] for file in files}
    features = sorted({word for words in named.values() for word in words})
    env = {**os.environ, "TEST_NGINX_BINARY": str(HERE / "sheer-shim")}
    out = subprocess.run(["perl", "-e", _AVAILABLE, "--", *features], cwd=SUITE, env=env, capture_output=True,
                         text=True, check=True).stdout
    available = {line.split()[0]: line.split()[1] == "1" for line in out.splitlines() if line.strip()}
    return {file: [word for word in dict.fromkeys(words) if not available.get(word)]
            for file, words in named.items()}


def run_file(netns: str, work: Path, binary: str, extra_env: dict[str, str], file: str) -> tap.FileResult:
    tmp = work / binary / file.removesuffix(".t")
    tmp.mkdir(parents=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TEST_NGINX", "HARNESS"))}
    env.update(extra_env, TMPDIR=str(tmp))
    started = time.monotonic()
    proc = subprocess.Popen(["ip", "netns", "exec", netns, "perl", file], cwd=SUITE, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    RUNNING.add(proc)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=FILE_TIMEOUT)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        out, err = proc.communicate()
    finally:
        RUNNING.discard(proc)
    logs = "\n".join(Path(path).read_text(errors="replace")
                     for path in sorted(glob.glob(str(tmp / "nginx-test-*" / "error.log"))))
    result = tap.parse(file, binary, out.decode(errors="replace"), err.decode(errors="replace"), logs,
                       timed_out)
    result.seconds = time.monotonic() - started
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", choices=["all", "ci"], default="all")
    parser.add_argument("--files", nargs="*", help="these .t files only")
    parser.add_argument("--every-file", action="store_true",
                        help="run the files of other modules too (they skip themselves: has())")
    parser.add_argument("--binary", choices=["both", "sheer", "nginx"], default="both")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", help="the report (default: docs/nginx-tests.md for the whole suite, "
                                      "/tmp/<lab>-nginx-tests.md for a part)")
    parser.add_argument("--json", help="also write every result as JSON here")
    parser.add_argument("--baseline",
                        help="fail if sheer passes fewer subtests of a file than this JSON says")
    parser.add_argument("--write-baseline", help="write sheer's passed subtests per file as JSON here")
    args = parser.parse_args(argv)
    if not (SUITE / "lib" / "Test" / "Nginx.pm").exists():
        raise SystemExit(f"no nginx-tests at {SUITE} (set NGINX_TESTS)")
    files = args.files or (list(CI_SUBSET) if args.subset == "ci" else
                           sorted(path.name for path in SUITE.glob("*.t")))
    unknown = [name for name in files if not (SUITE / name).is_file()]
    if unknown:
        parser.error(f"no such file in {SUITE}: {', '.join(unknown)} (the files are its *.t, e.g. proxy.t)")
    chosen = {name: env for name, env in binaries().items() if args.binary in ("both", name)}
    missing = claims(files)
    if not args.files and not args.every_file:
        # a file of another module only skips itself: it is listed, not run
        files = [file for file in files if not missing[file]]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # so the namespace is removed on a kill
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"{lab_name()}-nt-"))
    try:
        with namespace(f"{lab_name()}-nt") as netns:
            results = run_all(netns, work, chosen, files, args.jobs)
            regressed = _check(results, args.baseline)
            if regressed:
                # timing-dependent subtests exist: a file below its floor is run once more
                print(f"nginx-tests: running again: {' '.join(regressed)}", flush=True)
                again = run_all(netns, work / "again", {"sheer": chosen["sheer"]}, regressed, args.jobs)
                results = [r for r in results if r.binary != "sheer" or r.file not in regressed] + again
                regressed = _check(results, args.baseline)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for result in results:
        for other in results:
            if other.file == result.file and other is not result:
                tap.fill_unplanned(result, other)
    elapsed = time.monotonic() - started
    if args.json:
        Path(args.json).write_text(json.dumps([report.as_dict(r) for r in results], indent=1))
    text = report.render(results, missing, suite_commit=_suite_commit(),
                         sheer_commit=_git("rev-parse", "--short", "HEAD"),
                         nginx_version=_nginx_version(), elapsed=elapsed, jobs=args.jobs,
                         subset=args.subset if not args.files else "files", lab=lab_name())
    whole = not args.files and args.subset == "all" and args.binary == "both"
    out = args.out or (ROOT / "docs" / "nginx-tests.md" if whole else f"/tmp/{lab_name()}-nginx-tests.md")
    Path(out).write_text(text)
    print(f"nginx-tests: the table is in {out}")
    print(report.summary(results, elapsed))
    if args.write_baseline:
        passed = {r.file: r.count("pass") for r in sorted(results, key=lambda r: r.file)
                  if r.binary == "sheer" and r.count("pass")}
        Path(args.write_baseline).write_text(json.dumps(passed, indent=1) + "\n")
    for file in regressed:
        print(f"nginx-tests: {file}: sheer passes fewer subtests than {args.baseline} records, twice: a "
              "regression", file=sys.stderr)
    return 1 if regressed or _broken(results) else 0


def run_all(netns: str, work: Path, chosen: dict[str, dict[str, str]], files: list[str],
            jobs: int) -> list[tap.FileResult]:
    pool = ThreadPoolExecutor(jobs)
    try:
        submitted = [pool.submit(run_file, netns, work, binary, env, file)
                     for file in files for binary, env in chosen.items()]
        results = []
        for job in submitted:
            result = job.result()
            results.append(result)
            print(f"{result.binary:5} {result.file:45} {_line(result)}", flush=True)
        return results
    except BaseException:
        # stopped (SIGTERM, ^C): no new file starts, the running ones are killed with their groups
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(RUNNING):
            _kill_group(proc)
        raise
    finally:
        pool.shutdown(wait=True)


RUNNING: set[subprocess.Popen[bytes]] = set()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # the file's own process group: perl, its daemons, the binary
    except ProcessLookupError:
        pass


def _broken(results: list[tap.FileResult]) -> bool:
    """nginx 1.22 passing nothing means the harness is broken, not sheer."""
    nginx = [r for r in results if r.binary == "nginx" and r.skip_all is None]
    if nginx and not any(r.count("pass") for r in nginx):
        print("nginx-tests: nginx 1.22 passed no test at all: the harness is broken", file=sys.stderr)
        return True
    return False


def _check(results: list[tap.FileResult], baseline: str | None) -> list[str]:
    """The files where sheer passes fewer subtests than the baseline records (a regression)."""
    if not baseline:
        return []
    floor = json.loads(Path(baseline).read_text())
    regressed = []
    for result in results:
        want = floor.get(result.file)
        if result.binary == "sheer" and want is not None and result.count("pass") < want:
            print(f"nginx-tests: {result.file}: sheer passes {result.count('pass')} subtests, the "
                  f"baseline {want}", flush=True)
            regressed.append(result.file)
    return regressed


def _line(result: tap.FileResult) -> str:
    if result.skip_all is not None:
        return f"skipped: {result.skip_all}"
    died = f"  ({result.died})" if result.died else ""
    return (f"{result.count('pass')} passed, {result.count('fail')} failed, {result.count('skip')} skipped, "
            f"{result.seconds:.1f}s{died}")


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False).stdout.strip()


def _suite_commit() -> str:
    commit = SUITE / "COMMIT"
    return commit.read_text().split()[0] if commit.exists() else "unknown"


def _nginx_version() -> str:
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False).stderr
    return out.strip().split("/")[-1] if "/" in out else "unknown"


if __name__ == "__main__":
    sys.exit(main())
