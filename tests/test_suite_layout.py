"""The test suite's own house rules: test modules hold tests and never import each other (shared code
lives in tests/helpers.py and the other *_helpers / servers modules)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # lazy imports included
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ("." * node.level) + (node.module or "")
            names.add(base)
            names.update(f"{base}.{alias.name}" if node.module else f"{base}{alias.name}" for alias in node.names)
    return names


def test_no_module_imports_a_test_module():
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        for name in imported_modules(path):
            if name.rsplit(".", 1)[-1].startswith("test_"):
                offenders.append(f"{path.relative_to(TESTS.parent)} imports {name}")
    assert offenders == [], "move what is shared into tests/helpers.py:\n" + "\n".join(offenders)


def test_every_test_module_holds_tests():
    empty = []
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        tests = [
            n
            for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test_")
        ]
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.startswith("Test")]
        if not tests and not classes:
            empty.append(path.name)
    assert empty == [], f"modules named like tests but holding none (rename them, e.g. *_helpers.py): {empty}"
