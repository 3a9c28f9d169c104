"""Size limits that keep every module readable in one sitting (issue 15): no file in src/compsafe over 500
lines, no function or method over 80 lines (decorators excluded, docstring included).

A file or function that grows past a limit is split into well-named pieces with one job each, not exempted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import compsafe

SRC = Path(compsafe.__file__).parent
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """'file:line name (N lines)' for every function or method in ``path`` longer than ``limit``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > limit
    ]


def test_the_checks_see_the_source_tree() -> None:
    assert len(_sources()) > 50  # the package, not an installed stub


def test_long_function_check_catches_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_FUNCTION_LINES - 1))
    path = tmp_path / "long.py"
    path.write_text(f"def short():\n    return 1\n\n\nclass A:\n    def long(self):\n{body}\n", encoding="utf-8")
    assert long_functions(path) == []  # exactly at the limit
    path.write_text(path.read_text(encoding="utf-8") + "        return 0\n", encoding="utf-8")
    assert long_functions(path) == [f"long.py:6 long ({MAX_FUNCTION_LINES + 1} lines)"]


def test_no_file_over_500_lines() -> None:
    long_files = [
        f"{path.relative_to(SRC.parent)} ({n} lines)"
        for path in _sources()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
    ]
    assert not long_files, f"files over {MAX_FILE_LINES} lines (split them by job):\n" + "\n".join(long_files)


def test_no_function_over_80_lines() -> None:
    found = [f"{path.parent.relative_to(SRC.parent)}/{row}" for path in _sources() for row in long_functions(path)]
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines (split them):\n" + "\n".join(found)
