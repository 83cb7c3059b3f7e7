"""No import runs from a lower layer to a higher one, and no module imports itself round a cycle (read from the
sources, so a lazy import inside a function counts too)."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("puzzles", "sandbox", "factory")

# Lowest first. A module may import its own layer and the ones below it, never one above.
LAYERS = (
    ("puzzles",),
    ("sandbox",),
    ("factory.errors", "factory.settings", "factory.config"),
    ("factory.store",),
    ("factory.models", "factory.rewards"),
    ("factory.loop", "factory.verify_files"),
    ("factory.outputs",),
    ("factory.daemon",),
    ("factory.cli",),
)


def layer_of(module: str) -> int | None:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in (REPO / package).rglob("*.py")}


def imports(path: Path, modules: Mapping[str, Path]) -> list[tuple[int, str]]:
    """(line, module) for every import in ``path``, at any depth; ``from pkg import name`` names the
    submodule ``pkg.name`` where there is one, and relative imports are resolved."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if node.level else ""
            source = ".".join(part for part in (base, node.module) if part)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.append((node.lineno, submodule if submodule in modules else source))
    return found


def import_graph() -> dict[str, set[str]]:
    """Each package module and the package modules it imports."""
    modules = package_modules()
    return {name: {target for _, target in imports(path, modules) if target in modules and target != name}
            for name, path in modules.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle per back edge of a depth-first walk: none exactly when the graph has no cycle."""
    found: list[list[str]] = []
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        path.append(node)
        for target in sorted(graph[node]):
            if target in path:
                found.append(path[path.index(target):] + [target])
            elif target not in done:
                visit(target)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            visit(node)
    return found


def test_every_package_module_has_a_layer():
    for name in package_modules():
        assert name == "factory" or layer_of(name) is not None, f"{name} has no layer in tests/test_layers.py"


def test_no_import_goes_up_a_layer():
    modules = package_modules()
    upward = []
    for name, path in modules.items():
        own = layer_of(name)
        if own is None:
            continue
        for line, target in imports(path, modules):
            rank = layer_of(target)
            if rank is not None and rank > own:
                upward.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert upward == []


def test_no_import_cycle():
    found = [" -> ".join(cycle) for cycle in cycles(import_graph())]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_the_cycle_check_sees_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
