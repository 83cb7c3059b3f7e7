"""No import runs from a lower layer to a higher one (read from the sources, so a lazy import counts too)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Lowest first. A module may import its own layer and the ones below it, never one above.
LAYERS = (
    ("puzzles",),
    ("sandbox",),
    ("factory.errors", "factory.config"),
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


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_every_package_module_has_a_layer():
    for package in ("puzzles", "sandbox", "factory"):
        for path in (REPO / package).rglob("*.py"):
            name = module_name(path)
            assert name == "factory" or layer_of(name) is not None, f"{name} has no layer in tests/test_layers.py"


def test_no_import_goes_up_a_layer():
    upward = []
    for package in ("puzzles", "sandbox", "factory"):
        for path in (REPO / package).rglob("*.py"):
            own = layer_of(module_name(path))
            if own is None:
                continue
            for line, target in imports(path):
                rank = layer_of(target)
                if rank is not None and rank > own:
                    upward.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert upward == []
