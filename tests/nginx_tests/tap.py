"""One nginx-tests file's run, read from its TAP (stdout) and Test::More's diagnostics (stderr).

Counted per subtest: passed, failed (a `not ok`, a `not ok # TODO`: behaviour the binary lacks even
when the test excuses it, and every planned test that never ran because the file died), skipped.
Test::Nginx adds two checks to every file ("no alerts", "no sanitizer errors"); they count only when
they fail (passing them says nothing of a binary that never started), so both binaries are measured
on the same number of subtests.
Each failure keeps the reason it failed for, so the report can group them by cause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

HARNESS_CHECKS = ("no alerts", "no sanitizer errors")

_PLAN = re.compile(r"^1\.\.(\d+)(?:\s*#\s*(?:SKIP|skip)\w*\s*(.*))?$")
_RESULT = re.compile(r"^(not ok|ok)\b\s*(\d+)?\s*(?:-\s*)?(.*?)(?:\s*#\s*(TODO|SKIP|todo|skip)\b\s*(.*))?$")
_FAILED = re.compile(r"^#\s+Failed (?:\(TODO\) )?test(?: '(.*)')?\s*$")
_EMERG = re.compile(r"\[emerg\]\s*(?:\d+#\d+:\s*)?(.*)$")
_TESTDIR = re.compile(r"/\S*?/nginx-test-\w+/")
_WHERE = re.compile(r"^(?:/\S+?|command line):\d+: |\s+in /\S+:\d+$|\s+in command line$")


@dataclass
class Subtest:
    number: int
    name: str
    status: str                  # "pass", "fail", "skip"
    reason: str = ""             # why it failed or was skipped
    todo: bool = False


@dataclass
class FileResult:
    file: str
    binary: str
    planned: int = 0
    skip_all: str | None = None  # the whole file skipped, and why
    subtests: list[Subtest] = field(default_factory=list)
    died: str | None = None      # why the file stopped before its plan was done
    emerg: str | None = None     # the first [emerg] the binary said
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for test in self.subtests if test.status == status)

    @property
    def module_skip(self) -> bool:
        """Skipped by has(): a module outside the view both binaries are given."""
        return self.skip_all is not None and bool(re.match(r"no \S+ available$", self.skip_all))


def parse(file: str, binary: str, stdout: str, stderr: str, error_logs: str = "",
          timed_out: bool = False) -> FileResult:
    result = FileResult(file, binary)
    diagnostics = _diagnostics(stderr)
    emerg = result.emerg = first_emerg(stderr + "\n" + error_logs)
    for line in stdout.splitlines():
        line = line.rstrip()
        plan = _PLAN.match(line)
        if plan:
            result.planned = int(plan.group(1))
            if result.planned == 0:
                result.skip_all = (plan.group(2) or "skipped").strip()
            continue
        match = _RESULT.match(line)
        if not match:
            continue
        ok, number, name, directive, why = match.groups()
        number_ = int(number) if number else len(result.subtests) + 1
        directive = (directive or "").upper()
        if directive == "SKIP":
            result.subtests.append(Subtest(number_, name or why, "skip", why.strip()))
        elif ok == "ok":
            result.subtests.append(Subtest(number_, name, "pass", todo=directive == "TODO"))
        else:
            reason = diagnostics.get(name, "")
            if directive == "TODO":
                reason = f"{reason} (marked TODO by the test: {why.strip()})".strip()
            result.subtests.append(Subtest(number_, name, "fail", reason, todo=directive == "TODO"))
    if result.skip_all is not None:
        return result
    own = [test for test in result.subtests if test.name not in HARNESS_CHECKS]
    alerts = [test for test in result.subtests if test.name in HARNESS_CHECKS and test.status == "fail"]
    result.subtests = own + alerts
    # every file plans through Test::Nginx's plan(): its own tests plus the two harness checks
    missing = result.planned - 2 - len(own) if result.planned >= 2 else 0
    if missing > 0 or timed_out or not result.planned:
        result.died = died_because(stderr, emerg, timed_out)
        for n in range(max(missing, 0) if result.planned else 1):
            result.subtests.append(Subtest(10_000 + n, "(did not run)", "fail", result.died))
    return result


def fill_unplanned(result: FileResult, other: FileResult) -> None:
    """A file that died before its plan (`$t->run()->plan(N)` with a configuration refused) said nothing
    of how many subtests it has: the other binary's plan says it, so both are counted alike. So does a
    file that skipped itself because `try_run` could not start this binary while the other ran it: a
    configuration the other accepts was refused."""
    if not other.planned or other.skip_all is not None:
        return
    if result.skip_all is not None and not result.module_skip:
        why = f"configuration refused: {result.emerg}" if result.emerg else "did not start"
        result.died = f"{why} (the test skips itself: \"{result.skip_all}\")"
        result.skip_all = None
    if result.planned or result.died is None:
        return
    ran = [test for test in result.subtests if test.name != "(did not run)"]
    missing = other.planned - 2 - len([test for test in ran if test.name not in HARNESS_CHECKS])
    result.subtests = ran + [Subtest(10_000 + n, "(did not run)", "fail", result.died)
                             for n in range(max(missing, 1))]


def first_emerg(text: str) -> str | None:
    """The first `[emerg]` a binary said (stderr or its error log), without file:line."""
    for line in text.splitlines():
        found = _EMERG.search(line)
        if found:
            return normalize(found.group(1))
    return None


def normalize(message: str) -> str:
    """Without file:line and with the test's own directory as %%TESTDIR%%, so causes group."""
    return _TESTDIR.sub("%%TESTDIR%%/", _WHERE.sub("", message.strip()).strip())


def died_because(stderr: str, emerg: str | None, timed_out: bool) -> str:
    if timed_out:
        return "the file ran out of time (killed)"
    if emerg:
        return f"configuration refused: {emerg}"
    for line in stderr.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if " at " in line and (".pm line" in line or ".t line" in line):
            return "died: " + re.sub(r" at \S+ line \d+\.?$", "", line.strip())
    return "died before its plan was done"


def _diagnostics(stderr: str) -> dict[str, str]:
    """Test::More's explanation of each failed test, by test name, in one line."""
    found: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []

    def close() -> None:
        if name is not None and name not in found:
            found[name] = _summarize(lines)

    for line in stderr.splitlines():
        failed = _FAILED.match(line)
        if failed:
            close()
            name, lines = failed.group(1) or "", []
        elif name is not None and line.startswith("#"):
            if line.startswith("#   at ") or re.match(r"^#\s+at \S+ line \d+\.", line):
                continue
            if line.startswith("# Looks like"):
                continue
            lines.append(line[1:].strip())
        elif name is not None:
            close()
            name = None
    close()
    return found


_LIKE = re.compile(r"^'(.*)' (doesn't match|matches) '\(\?\^\w*:(.*)\)'$", re.DOTALL)


def _summarize(lines: list[str]) -> str:
    """is(): `got: X expected: Y`; like()/unlike(): `wanted /Y/, got 'X'` (the start of X: a response's
    status line and first headers say most)."""
    text = re.sub(r"\s+", " ", " ".join(part for part in lines if part)).strip()
    like = _LIKE.match(text)
    if like:
        got, verb, wanted = like.groups()
        got = got[:120] + ("..." if len(got) > 120 else "")
        want = "wanted" if verb.startswith("doesn") else "did not want"
        return f"{want} /{wanted[:120]}/, got '{got}'"
    return text[:300] + ("..." if len(text) > 300 else "")
