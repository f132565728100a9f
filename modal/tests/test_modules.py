"""The app's modules: one concern each, no import cycle, each importable on its own."""

import ast
import subprocess
import sys

import pytest

from conftest import MODAL_DIR

MODULES = sorted(path.stem for path in MODAL_DIR.glob("*.py"))
# Import the real `modal` package at the top: they run where it is installed, not in these tests.
NEEDS_MODAL = {"app", "sandbox_image"}


def local_imports(name: str) -> set:
    """The app's own modules that ``name`` imports anywhere in its file (late imports included)."""
    tree = ast.parse((MODAL_DIR / f"{name}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(MODULES)


def test_the_local_imports_have_no_cycle():
    graph = {name: local_imports(name) for name in MODULES}
    done, path = set(), []

    def visit(name):
        if name in path:
            cycle = path[path.index(name):] + [name]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        path.append(name)
        for imported in sorted(graph[name]):
            visit(imported)
        path.pop()
        done.add(name)

    for name in MODULES:
        visit(name)


@pytest.mark.parametrize("name", [m for m in MODULES if m not in NEEDS_MODAL])
def test_each_module_imports_alone(name):
    code = f"import sys; sys.path.insert(0, {str(MODAL_DIR)!r}); import {name}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
