"""docs/nginx-tests.md: per file, what sheer and nginx 1.22 passed, failed and skipped, and why each
failing subtest failed, grouped by cause."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tap import HARNESS_CHECKS, FileResult, Subtest

NAMES = {"sheer": "sheer", "nginx": "nginx 1.22"}
NOTES = Path(__file__).resolve().parent / "notes.md"


def as_dict(result: FileResult) -> dict[str, Any]:
    return {"file": result.file, "binary": result.binary, "skip_all": result.skip_all,
            "died": result.died, "seconds": round(result.seconds, 1), "passed": result.count("pass"),
            "failed": result.count("fail"),
            "skipped": result.count("skip"),
            "failures": [{"name": t.name, "reason": t.reason} for t in result.subtests if t.status == "fail"]}


def cause_of(test: Subtest) -> str:
    """The group a failing subtest is listed under."""
    if test.name == "(did not run)":
        return test.reason
    if test.name == "no alerts":
        return "[alert] lines in the error log"
    if test.name in HARNESS_CHECKS:
        return "sanitizer errors in the error log"
    if test.todo:
        return "fails where the test itself says TODO (newer nginx behaviour)"
    if "got: undef" in test.reason or "undef doesn't match" in test.reason.replace("'", ""):
        return "no answer (connection refused, closed or timed out)"
    return "answer differs from nginx's"


def _totals(results: list[FileResult]) -> tuple[int, int, int]:
    return (sum(r.count("pass") for r in results), sum(r.count("fail") for r in results),
            sum(r.count("skip") for r in results))


def summary(results: list[FileResult], elapsed: float) -> str:
    lines = []
    for binary, name in NAMES.items():
        mine = [r for r in results if r.binary == binary and not r.module_skip]
        if mine:
            passed, failed, skipped = _totals(mine)
            lines.append(f"nginx-tests {name}: {len(mine)} files, {passed} passed, {failed} failed, "
                         f"{skipped} skipped")
    lines.append(f"nginx-tests: {elapsed:.0f} s")
    return "\n".join(lines)


def render(results: list[FileResult], missing: dict[str, list[str]], *, suite_commit: str,
           sheer_commit: str, nginx_version: str, elapsed: float, jobs: int, subset: str, lab: str) -> str:
    by_file: dict[str, dict[str, FileResult]] = defaultdict(dict)
    for result in results:
        by_file[result.file][result.binary] = result
    claimed = sorted(file for file in by_file if not missing.get(file))
    outside = sorted(file for file, lacks in missing.items() if lacks)
    out = [
        "# nginx's test suite against sheer",
        "",
        (f"Written by `make nginx-tests` (`tests/nginx_tests/run.py --subset {subset}`) on "
         f"{time.strftime('%Y-%m-%d')}: nginx-tests {suite_commit[:12]}, sheer {sheer_commit}, Debian's "
         f"nginx {nginx_version}, {jobs} files at a time in the network namespace `{lab}-nt` (only `lo`), "
         f"{elapsed / 60:.1f} minutes for both binaries."),
        "",
        "Both binaries run the same files through shims (`tests/nginx_tests/sheer-shim`, `nginx-shim`) that",
        "answer `-V` with the same module view, `tests/nginx_tests/configure-arguments`: the modules sheer",
        "claims. The files of the claimed modules are those whose `has()` asks for nothing outside that view",
        "(as Test::Nginx decides it); the others are skipped by both and listed at the end.",
        "Subtests are counted as TAP reports them, plus: a `not ok # TODO` is a failure (the behaviour is",
        "missing, whatever the test excuses), every planned subtest that never ran because the file died",
        "is a failure, and Test::Nginx's two checks of the error log count only when they fail.",
        "",
        "## Totals over the files of the claimed modules",
        "",
        "| binary | files run | passed | failed | skipped | pass ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for binary, name in NAMES.items():
        runs = [by_file[f][binary] for f in claimed
                if binary in by_file[f] and by_file[f][binary].skip_all is None]
        passed, failed, skipped = _totals(runs)
        ratio = f"{passed / (passed + failed):.1%}" if passed + failed else "-"
        seconds = sum(r.seconds for r in runs)
        out.append(f"| {name} | {len(runs)} | {passed} | {failed} | {skipped} | {ratio} |")
        out[-1] += f" <!-- {seconds:.0f} s -->"
    out += ["", "## Per file", "",
            "| file | sheer passed | failed | skipped | nginx 1.22 passed | failed | skipped |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for file in claimed:
        cells = []
        for binary in NAMES:
            result = by_file[file].get(binary)
            if result is None:
                cells += ["", "", ""]
            elif result.skip_all is not None:
                cells += ["-", "-", f"all: {result.skip_all}"]
            else:
                cells += [str(result.count("pass")), str(result.count("fail")), str(result.count("skip"))]
        out.append(f"| {file} | " + " | ".join(cells) + " |")
    for binary, name in NAMES.items():
        out += _causes([by_file[f][binary] for f in claimed if binary in by_file[f]], name)
    if NOTES.exists():          # what a table cannot say: the history of these numbers, what blocks the rest
        out += ["", NOTES.read_text().rstrip()]
    out += _outside(outside, missing)
    return "\n".join(out) + "\n"


def _causes(results: list[FileResult], name: str) -> list[str]:
    groups: dict[str, list[tuple[str, Subtest]]] = defaultdict(list)
    for result in results:
        for test in result.subtests:
            if test.status == "fail":
                groups[cause_of(test)].append((result.file, test))
    if not groups:
        return ["", f"## Why {name} fails", "", "It does not."]
    out = ["", f"## Why {name} fails, by cause", ""]
    for cause, tests in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        files: dict[str, list[Subtest]] = defaultdict(list)
        for file, test in tests:
            files[file].append(test)
        out += [f"### {cause}: {len(tests)} subtests in {len(files)} files", ""]
        if all(test.name == "(did not run)" for _, test in tests):
            out.append(", ".join(f"{file} ({len(found)})" for file, found in sorted(files.items())))
            out.append("")
            continue
        for file, found in sorted(files.items()):
            for test in found:
                why = f": {test.reason}" if test.reason and test.reason != cause else ""
                out.append(f"- {file}, \"{test.name}\"{_escape(why)}")
        out.append("")
    return out


def _outside(outside: list[str], missing: dict[str, list[str]]) -> list[str]:
    by_module: dict[str, list[str]] = defaultdict(list)
    for file in outside:
        by_module[missing[file][0]].append(file)
    out = ["", "## Files of other modules", "",
           "Not run (`run.py --every-file` runs them: they skip themselves); listed under the first module",
           "each asks for that the view does not have.", ""]
    for module, files in sorted(by_module.items(), key=lambda item: (-len(item[1]), item[0])):
        out.append(f"- {module} ({len(files)}): {', '.join(files)}")
    return out


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")
