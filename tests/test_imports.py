"""No import circle in common/ nor in any stage package: each module can be read after the ones it imports.

The imports are read from the source (``ast``), at module level and inside functions alike:
an import moved into a function to dodge a circle is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in ("tests",))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that ``path`` imports (absolute or relative, ``from x import y`` of a submodule too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    files = [
        f
        for package in PACKAGES
        for f in (ROOT / package).rglob("*.py")
        # not the packages' hidden folders: make bench-peers installs mlflow in bench/.venv-mlflow
        if not any(part.startswith(".") for part in f.relative_to(ROOT / package).parts)
    ]
    modules = {module_name(f) for f in files}
    return {module_name(f): imported(f, modules) for f in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as a list of modules (first = last), or None."""
    state: dict[str, int] = {}  # 1: being explored, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_walk_sees_the_packages_and_their_imports():
    graph = import_graph()
    assert {"common", "stage1_local", "stage4_prod"} <= set(PACKAGES)
    assert "common.features" in graph["common.model"]
    assert {"stage4_prod.state", "stage4_prod.audit"} <= graph["stage4_prod.auth"]  # relative imports


def test_a_circle_is_found_even_through_an_import_inside_a_function():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle(package):
    graph = import_graph()
    inside = {m: {t for t in targets if t.split(".")[0] == package} for m, targets in graph.items()}
    cycle = find_cycle({m: t for m, t in inside.items() if m.split(".")[0] == package})
    assert cycle is None, " -> ".join(cycle)


def test_no_import_circle_across_packages_and_common_imports_no_stage():
    graph = import_graph()
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    stages = [p for p in PACKAGES if p.startswith("stage")]
    for module, targets in graph.items():
        if module.split(".")[0] == "common":
            assert not {t for t in targets if t.split(".")[0] in stages}, module
