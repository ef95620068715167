"""The house rules that neither ruff nor import-linter check: no module over 400 lines, and the tests' own
helpers (not a package) stay out of the command line too."""

from __future__ import annotations

import ast
from pathlib import Path

import sheer

TESTS = Path(__file__).resolve().parents[1]
SHEER = Path(sheer.__file__).resolve().parent      # the installed copy under `make pythons`
MAX_LINES = 400


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_tests_helpers_do_not_import_the_command_line() -> None:
    helpers = [p for p in TESTS.rglob("*.py") if not p.name.startswith("test_")]
    assert any(p.name == "sheer_process.py" for p in helpers)     # the helpers are found
    users = {str(p.relative_to(TESTS)) for p in helpers
             if any(name == "sheer.cli" or name.startswith("sheer.cli.") for name in imported(p))}
    assert users == set()


def test_no_module_is_over_400_lines() -> None:
    sizes = {str(p.relative_to(SHEER)): len(p.read_text().splitlines()) for p in SHEER.rglob("*.py")}
    assert len(sizes) > 50                                           # the package is found
    assert {name for name, n in sizes.items() if n > MAX_LINES} == set()
