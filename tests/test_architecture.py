"""The shape of the house (README, Layout): every import points down the layers, no cycles.

Imports are read from the source with ``ast`` (nothing is executed), so this holds for every
module, including ones no other test imports.  Imports under ``if TYPE_CHECKING:`` are for the
type checker only and do not count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OWN = ("seqmem", "tasks")
# Bottom to top; a module may import from its own layer or any lower one, never a higher one.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("tasks",),
    ("seqmem.cells",),
    ("seqmem.config", "seqmem.io"),
    ("seqmem.model", "seqmem.chunker"),
    ("seqmem.stopping",),
    ("seqmem.train",),
    ("seqmem.analysis",),
    ("seqmem.results",),
    ("seqmem.sweep",),
    ("seqmem.report",),
    ("seqmem.tensorboard",),
    ("seqmem.cli",),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in OWN for p in sorted((ROOT / package).rglob("*.py"))}


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The own modules an import statement loads (``from pkg import name`` loads pkg.name if that
    is a module, else pkg)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        source = _resolve(module, node, MODULES[module].name == "__init__.py")
        names = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
    return [name for name in names if name.split(".")[0] in OWN]


def _walk(tree: ast.AST, inside: str | None = None):
    """(import node, the kind of block it is in: None at module level, 'function', 'try')."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and _is_type_checking(child):
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, inside
        kind = inside
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            kind = "function"
        elif isinstance(child, ast.Try) and inside is None:
            kind = "try"
        yield from _walk(child, kind)


def _imports() -> dict[str, list[tuple[str, str | None, int]]]:
    found = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found[module] = [
            (target, inside, node.lineno) for node, inside in _walk(tree) for target in _targets(module, node)
        ]
    return found


IMPORTS = _imports()


def _layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS (and to the README's Layout)")


@pytest.mark.parametrize("module", [m for m in MODULES if m not in OWN])
def test_every_module_has_a_layer(module: str) -> None:
    _layer(module)


def test_imports_point_down() -> None:
    upward = [
        f"{module}:{line} imports {target}"
        for module, imports in IMPORTS.items()
        if module not in OWN
        for target, _inside, line in imports
        if target not in OWN and _layer(target) > _layer(module)
    ]
    assert not upward, "imports pointing up the layers:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    graph = {m: {t for t, inside, _ in imports if t in MODULES and t != m} for m, imports in IMPORTS.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_imports_of_own_modules_inside_functions_or_try_blocks() -> None:
    hidden = [
        f"{module}:{line} imports {target} inside a {inside}"
        for module, imports in IMPORTS.items()
        for target, inside, line in imports
        if inside is not None
    ]
    assert not hidden, "imports hidden in functions or try blocks:\n" + "\n".join(hidden)


def test_tasks_never_import_seqmem() -> None:
    leaks = [
        f"{module}:{line} imports {target}"
        for module, imports in IMPORTS.items()
        if module.split(".")[0] == "tasks"
        for target, _inside, line in imports
        if target.split(".")[0] == "seqmem"
    ]
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("seqmem.report", ("seqmem.train", "seqmem.sweep", "seqmem.cli")),
        ("seqmem.results", ("seqmem.train", "seqmem.sweep", "seqmem.analysis", "seqmem.report")),
        ("tasks", ("seqmem",)),
    ],
)
def test_importing_a_layer_loads_nothing_above_it(module: str, forbidden: tuple[str, ...]) -> None:
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith({forbidden!r})))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]", f"import {module} also loaded {out}"


def test_the_checker_sees_imports_and_hidden_ones() -> None:
    # The checks above would pass vacuously if the parser saw no imports at all.
    assert any(target.startswith("seqmem.cells") for target, _inside, _line in IMPORTS["seqmem.model"])
    tree = ast.parse(
        "import seqmem.cells\n"
        "def f():\n    from seqmem import train\n"
        "try:\n    import seqmem.report\nexcept ImportError:\n    pass\n"
        "if TYPE_CHECKING:\n    import seqmem.sweep\n"
    )
    assert sorted(str(inside) for _node, inside in _walk(tree)) == ["None", "function", "try"]
