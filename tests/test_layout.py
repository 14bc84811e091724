"""The package's layers: each imports only the layers below it, and no import circle.

``xsoftmax/`` is four folders, lowest first: ``_contract`` (argument checks and
preparation), ``_definition`` (the array-API implementation every kernel is held
to), ``_kernels`` (one folder per technology and the dispatch table), ``_api`` (the
public functions). The package's top (``__init__``, the demo, the drop-in wrappers)
sits above them all. Read from the source, so it needs no backend.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "xsoftmax"
LAYERS = ("_contract", "_definition", "_kernels", "_api")
TOP = len(LAYERS)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return TOP


def _imports(path: Path) -> set[str]:
    """The xsoftmax modules ``path`` imports, at its top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; write `from xsoftmax.... import`"
            if node.module and node.module.split(".")[0] == "xsoftmax":
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    found.add(candidate if _is_module(candidate) else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "xsoftmax")
    return found


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").exists() or (PACKAGE / rel / "__init__.py").exists()


GRAPH = {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_only_run_down(module: str) -> None:
    upward = sorted(m for m in GRAPH[module] if _layer(m) > _layer(module))
    assert not upward, f"{module} imports a higher layer: {upward}"


def test_layers_are_folders() -> None:
    for layer in LAYERS:
        assert (PACKAGE / layer / "__init__.py").exists(), layer
    loose = sorted(
        p.name for p in PACKAGE.glob("_*.py") if p.name not in ("__init__.py", "__main__.py")
    )
    assert not loose, f"private modules outside the four layers: {loose}"


def test_kernels_never_call_back_into_the_checks() -> None:
    offenders = sorted(
        m
        for m, deps in GRAPH.items()
        if _layer(m) in (LAYERS.index("_definition"), LAYERS.index("_kernels"))
        and "xsoftmax._contract.checks" in deps
    )
    assert not offenders, f"the checks run once, in the public layer's call: {offenders}"


def test_no_import_circle() -> None:
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(GRAPH.get(module, ())):
            if dep == module or dep not in GRAPH:
                continue
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep] if dep in path else [module, dep]
                pytest.fail(f"import circle: {' -> '.join(cycle)}")
            if dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_the_checker_sees_a_planted_upward_import(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("from xsoftmax._api.softmax import softmax\n", encoding="utf-8")
    assert _layer(next(iter(_imports(planted)))) > _layer("xsoftmax._contract.planted")
