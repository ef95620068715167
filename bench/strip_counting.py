"""A copy of a checkout without its counting: the A side of "what counting costs"
(docs/performance.md). Every statement that adds to the shared board (`row[...] += ...`, a zone's
`finished`, the DSR sender's running totals and its publishing) becomes `pass`, and balancers stop
checking the API's version per pick. Nothing else changes, so `python -m bench.ab --a STRIPPED --b .`
measures exactly what counting and the API's per-pick check cost on each workload.

    git worktree add --detach /tmp/nocount HEAD && cp -a .venv /tmp/nocount/   (or make -C /tmp/nocount venv)
    python -m bench.strip_counting /tmp/nocount
    python -m bench.ab --a /tmp/nocount --b . -w dns-dsr-router-user,dns-proxied,tcp-keepalive,http -n 9

Each rule must match somewhere: when the code moves, this script says which rule found nothing
instead of measuring a build that still counts."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# (files, pattern, replacement): a whole line matched by pattern becomes the replacement
RULES: list[tuple[str, str, str]] = [
    ("sheer/io/**/*.py", r"^(\s*)(?:counters\.|self\.)?row\[.*\] [-+]?= .*$", r"\1pass  # stripped"),
    ("sheer/io/http/request.py", r"^(\s*)zone\.finished\(.*$", r"\1pass  # stripped"),
    ("sheer/io/dsr.py", r"^(\s*)(?:sent|size)\[peer\.index\] \+= .*$", r"\1pass  # stripped"),
    ("sheer/io/dsr.py", r"^(\s*)self\._publishing = loop\.call_later\(.*$", r"\1pass  # stripped"),
    ("sheer/core/balancers/round_robin.py", r"^(\s*)cell = self\._cell$", r"\1cell = None  # stripped"),
    ("sheer/core/balancers/round_robin.py", r"^(\s*)elif self\.overrides is not None and .*:$",
     r"\1elif False:  # stripped"),
]


def strip(root: Path) -> list[str]:
    said = []
    for files, pattern, replacement in RULES:
        regex = re.compile(pattern, re.MULTILINE)
        found = 0
        for path in sorted(root.glob(files)):
            text = path.read_text()
            new, n = regex.subn(replacement, text)
            if n:
                path.write_text(new)
                found += n
        if not found:
            raise SystemExit(f"bench.strip_counting: no line of {files} matches {pattern!r}: "
                             "update the rules")
        said.append(f"{found:3d} lines  {files}  {pattern}")
    return said


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.strip_counting", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkout", type=Path, help="a checkout to change in place (never your working tree)")
    args = p.parse_args(argv)
    if (args.checkout / ".git").is_dir():
        raise SystemExit("bench.strip_counting: refusing to change a main working tree; use a worktree copy")
    for line in strip(args.checkout):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
