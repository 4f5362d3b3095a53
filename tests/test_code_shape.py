"""Small modules with one job: no module of `smapi/` or `xapi/` over 600 lines, no function over 80.

Read with `ast`, so the count is of real source lines: a function spans from its `def` line to its last line
(decorators excluded), nested functions are counted on their own and as part of the function holding them.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("smapi", "xapi")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _sources() -> List[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def _functions(tree: ast.AST) -> Iterator[Tuple[str, int, int]]:
    """(qualified name, first line, line count) of every function and method."""

    def walk(node: ast.AST, prefix: str) -> Iterator[Tuple[str, int, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                yield name, child.lineno, (child.end_lineno or child.lineno) - child.lineno + 1
                yield from walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    return walk(tree, "")


def test_there_are_sources() -> None:
    assert len(_sources()) > 100


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_module_and_function_sizes(path: Path) -> None:
    text = path.read_text()
    problems = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        problems.append(f"the module has {lines} lines (at most {MAX_MODULE_LINES}): split it by job")
    for name, first, count in _functions(ast.parse(text, str(path))):
        if count > MAX_FUNCTION_LINES:
            problems.append(f"{name} (line {first}) has {count} lines (at most {MAX_FUNCTION_LINES})")
    assert not problems, f"{path.relative_to(REPO)}: " + "; ".join(problems)


def test_the_limits_are_enforced() -> None:
    """The walk finds methods and nested functions, and measures them as the limits mean."""
    body = "\n".join(f"        x = {i}" for i in range(MAX_FUNCTION_LINES))
    tree = ast.parse(f"class C:\n    def m(self):\n        def inner():\n            pass\n{body}\n")
    found = {name: count for name, _, count in _functions(tree)}
    assert found == {"C.m": MAX_FUNCTION_LINES + 3, "C.m.inner": 2}
