"""The code stays readable: no function over 60 lines, no line wider than the linter's limit. Not
graded.

File sizes are guidance (DESIGN.md: lesson files of about 100-450 lines), not a test: a size cap met
by packing lines makes a worse file.
"""

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES = 60  # of code: a docstring does not make a function harder to follow
MAX_LINE = tomllib.loads((REPO / "ruff.toml").read_text())["line-length"]


def python_files() -> list[Path]:
    """The repository's Python files outside tests/ and hidden folders (.venv, .git, ...)."""
    files = []
    for path in sorted(REPO.rglob("*.py")):
        name = path.relative_to(REPO).as_posix()
        if not name.startswith(("tests/", ".")) and "/." not in name and "venv/" not in name:
            files.append(path)
    return files


def docstring_lines(function: ast.FunctionDef) -> int:
    first = function.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        if isinstance(first.value.value, str):
            return first.end_lineno - first.lineno + 1
    return 0


def test_no_function_over_60_lines():
    too_long = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1 - docstring_lines(node)
                name = f"{path.relative_to(REPO).as_posix()}::{node.name}"
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}: {length} lines")
    assert not too_long, f"split these up (at most {MAX_FUNCTION_LINES} lines):\n" + "\n".join(
        too_long
    )


def test_no_line_wider_than_the_linters_limit():
    wide = []
    for path in python_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if len(line) > MAX_LINE:
                wide.append(f"{path.relative_to(REPO).as_posix()}:{number}: {len(line)} characters")
    assert not wide, f"lines over {MAX_LINE} characters:\n" + "\n".join(wide)
