"""Imports run one way (DESIGN.md §4) and no memjax modules import each other in a cycle.

Every ``memjax`` module is parsed (``ast``); its imports — at module level and inside functions,
but not under ``if TYPE_CHECKING:`` — are resolved to memjax modules. The layers are

    core < nn < memories < models < controllers

(a module may import its own layer and those below it); ``sparsity`` and ``pruning`` may import
``core`` and ``nn``; ``train`` and ``data`` import nothing paper-specific (``core``, ``nn``,
``train``, ``data`` only); ``nnx``, ``eqx`` and ``compat`` (wrappers and converters of the
layers) may import ``core`` … ``models``; the top-level ``memjax/__init__.py`` re-exports
everything.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).parents[1] / "memjax"

ORDER = ("core", "nn", "memories", "models", "controllers")
BELOW = {name: set(ORDER[: i + 1]) for i, name in enumerate(ORDER)}
ALLOWED = {
    **BELOW,
    "sparsity": {"core", "nn", "sparsity"},
    "pruning": {"core", "nn", "pruning"},
    "train": {"core", "nn", "train", "data"},
    "data": {"core", "nn", "data"},
    "nnx": {*BELOW["models"], "nnx"},
    "eqx": {*BELOW["models"], "eqx"},
    "compat": {*BELOW["models"], "compat"},
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(p): p
    for p in sorted(ROOT.rglob("*.py"))
    if "vendor" not in p.relative_to(ROOT).parts
}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(name: str) -> str | None:
    """The memjax module ``name`` refers to (itself, or the nearest enclosing module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> list[tuple[str, int]]:
    """``(imported memjax module, line)`` for every import of ``module`` outside TYPE_CHECKING."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "memjax":
                    found.append((_resolve(alias.name), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] == "memjax":
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found.append((sub if sub in MODULES else _resolve(target), node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return [(m, line) for m, line in found if m is not None]


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _graph() -> dict[str, set[str]]:
    return {m: {target for target, _ in imports_of(m) if target != m} for m in MODULES}


def test_every_memjax_module_is_in_a_known_layer():
    unknown = sorted({layer_of(m) for m in MODULES} - set(ALLOWED) - {None})
    assert not unknown, f"memjax subpackages with no place in the layering: {unknown}"


def upward(module: str, imports: list[tuple[str, int]]) -> list[str]:
    """The imports of ``module`` that its layer may not make, as messages."""
    layer = layer_of(module)
    return [
        f"{module}:{line} imports {target} ({layer_of(target)} is not below {layer})"
        for target, line in imports
        if layer is not None
        and layer_of(target) is not None
        and layer_of(target) not in ALLOWED[layer]
    ]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) is not None))
def test_imports_point_down(module):
    bad = upward(module, imports_of(module))
    assert not bad, "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a cycle."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(_cycle_in(graph, set(component)))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _cycle_in(graph, component: set[str]) -> list[str]:
    """One concrete cycle through the component, for the message."""
    start = min(component)
    path, seen = [start], {start}
    while True:
        nxt = min(w for w in graph[path[-1]] if w in component)
        if nxt in seen:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)
        seen.add(nxt)


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_upward_imports_and_cycles():
    """The checker itself: real imports are found (module and function level, relative, not
    under TYPE_CHECKING), an upward import and a cycle are reported."""
    targets = {t for t, _ in imports_of("memjax.models.associative")}
    assert {"memjax.core.drivers", "memjax.core.heads"} <= targets
    # drivers imports protocol only under TYPE_CHECKING
    assert "memjax.core.protocol" not in {t for t, _ in imports_of("memjax.core.drivers")}
    assert "memjax.core.taps" in {t for t, _ in imports_of("memjax.core.token_step")}
    assert upward("memjax.core.drivers", [("memjax.memories.linear", 3)]) == [
        "memjax.core.drivers:3 imports memjax.memories.linear (memories is not below core)"
    ]
    assert upward("memjax.train.loop", [("memjax.models.associative", 1)])
    assert upward("memjax.pruning.x", [("memjax.memories.linear", 1)])
    assert not upward("memjax.models.x", [("memjax.memories.linear", 1), ("memjax.nn.lstm", 2)])
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
