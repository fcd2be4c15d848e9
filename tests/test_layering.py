"""The package's import graph keeps its layers: read from the source with `ast`, nothing imported.

Layers, highest first (a module may import its own layer or lower ones, never a higher one):

    6 cli                                    (and defendr_cli/__main__.py)
    5 core/pipeline
    4 core/stages
    3 core/training, core/evaluation, core/explain
    2 core/attacks, core/models, core/data
    1 core/io
    0 foundation: the modules directly in core/ (errors, runtime, progress, atomic, ...)

Also: core never imports cli, typer or rich; the package's own modules are imported at module
level (a function-local import hides the real graph); and the graph has no circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "defendr_cli"
LAYERS = {
    "cli": 6, "__main__": 6,
    "core.pipeline": 5,
    "core.stages": 4,
    "core.training": 3, "core.evaluation": 3, "core.explain": 3,
    "core.attacks": 2, "core.models": 2, "core.data": 2,
    "core.io": 1,
}
FOUNDATION = 0
CLI_ONLY = ("typer", "rich", "click")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    """The layer of a defendr_cli module, None for defendr_cli itself and defendr_cli.core."""
    rest = module.split(".")[1:]
    if not rest:
        return None
    for size in (2, 1):
        key = ".".join(rest[:size])
        if key in LAYERS:
            return LAYERS[key]
    if rest[0] == "core":
        return FOUNDATION if len(rest) == 2 else None
    return None


def resolve(module: str, is_package: bool, node: ast.ImportFrom, known: set[str]) -> list[str]:
    """Absolute module names a `from ... import ...` statement refers to: the imported submodules
    (`from pkg import mod`), else the module the names come from."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    submodules = [f"{prefix}.{alias.name}" for alias in node.names if f"{prefix}.{alias.name}" in known]
    return submodules if len(submodules) == len(node.names) else [prefix] + submodules


def collect() -> dict[str, list[tuple[str, int, bool]]]:
    """module -> [(imported module, line, at module level)] for every import in the package."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, list[tuple[str, int, bool]]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        top_level = {id(node) for node in tree.body}
        for node in tree.body:  # `if TYPE_CHECKING:` blocks and try/except at module level count as top level
            if isinstance(node, (ast.If, ast.Try)):
                top_level |= {id(child) for child in ast.walk(node)}
        edges = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = resolve(name, path.name == "__init__.py", node, set(modules))
            else:
                continue
            for target in targets:
                edges.append((target, node.lineno, id(node) in top_level))
        graph[name] = edges
    return graph


GRAPH = collect()
KNOWN = set(GRAPH)


def internal_edges(module: str) -> list[tuple[str, int, bool]]:
    return [(target, line, top) for target, line, top in GRAPH[module] if target in KNOWN and target != module]


def test_the_graph_was_read():
    assert "defendr_cli.cli.app" in GRAPH and "defendr_cli.core.errors" in GRAPH
    assert sum(len(internal_edges(m)) for m in GRAPH) > 100


@pytest.mark.parametrize("module", sorted(m for m in KNOWN if m.startswith("defendr_cli.core")))
def test_core_never_imports_the_cli_layer(module):
    bad = [(target, line) for target, line, _ in GRAPH[module]
           if target.split(".")[0] in CLI_ONLY or target.startswith("defendr_cli.cli")]
    assert not bad, f"{module} imports the CLI layer: {bad}"


def test_no_lower_layer_imports_a_higher_one():
    bad = []
    for module in sorted(KNOWN):
        own = layer_of(module)
        if own is None:
            continue
        for target, line, _ in internal_edges(module):
            other = layer_of(target)
            if other is not None and other > own:
                bad.append(f"{module}:{line} (layer {own}) imports {target} (layer {other})")
    assert not bad, "\n".join(bad)


def test_package_modules_are_imported_at_module_level():
    bad = [f"{module}:{line} imports {target} inside a function"
           for module in sorted(KNOWN) for target, line, top in internal_edges(module) if not top]
    assert not bad, "\n".join(bad)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph `edges`, or None (iterative depth-first search)."""
    state: dict[str, int] = {}
    for root in sorted(edges):
        if state.get(root):
            continue
        stack = [(root, iter(sorted(edges[root])))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(edges.get(child, ())))))
                path.append(child)
    return None


def test_no_import_circles():
    edges = {m: set() for m in KNOWN}
    for module in KNOWN:
        for target, _, _ in internal_edges(module):
            edges[module].add(target)
    cycle = find_cycle(edges)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_checks_can_fail():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer_of("defendr_cli.core.io.reader") < layer_of("defendr_cli.core.attacks.pgd") \
        < layer_of("defendr_cli.core.training.loop") < layer_of("defendr_cli.core.stages.attack") \
        < layer_of("defendr_cli.core.pipeline.reproduce") < layer_of("defendr_cli.cli.app")
    assert layer_of("defendr_cli.core.errors") == FOUNDATION
