"""The shape of the package: imports run one way (interfaces → services → store and the pure
cores) and no modules import each other, directly or round a circle.

The graph is built from the source with :mod:`ast`, counting every import — at the top of a
module, inside a function, or only for type checking — because a circle hidden in a function
is still a circle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"

# The layers, lowest first; a module may import only from its own layer or a lower one.
CORES = ("errors", "documents", "protocol", "registry", "criteria", "facts", "clinical", "schedule",
         "enrolment", "safety", "response", "outcomes", "cellproduct", "views")
LAYERS: dict[str, int] = {
    **dict.fromkeys(CORES, 0), "screening": 1, "store": 1, "forms": 1, "services": 2, "web": 3, "cli": 3,
}
INTERFACES = ("web", "cli")
# `trialdesk serve` starts the web application: the command line may import it, never the
# other way round.
LAUNCHES = {("cli", "trialdesk.web.app"), ("cli", "trialdesk.web.settings")}


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "trialdesk").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if "migrations" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
            if base in MODULES and MODULES[base].name == "__init__.py":
                targets.append(base)  # ``from pkg import mod`` runs pkg/__init__ first
        for name in targets:
            if name.startswith("trialdesk"):
                found = _resolve(name)
                if found and found != module:
                    out.add(found)
    return out


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_graph_finds_a_circle_when_there_is_one() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions() -> None:
    assert "trialdesk.services.patients" in GRAPH["trialdesk.web.api"]
    assert len(GRAPH) > 100


def test_no_modules_import_each_other() -> None:
    assert _circles(GRAPH) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_one_way(module: str) -> None:
    area = _area(module)
    if area not in LAYERS:
        return  # the package itself and its entry points (trialdesk, trialdesk.__main__)
    upward = sorted(t for t in GRAPH[module] if _area(t) in LAYERS
                    and LAYERS[_area(t)] > LAYERS[area])
    assert upward == [], f"{module} imports a higher layer: {upward}"
    if area in INTERFACES:
        other = [t for t in GRAPH[module] if _area(t) in INTERFACES and _area(t) != area
                 and (area, t) not in LAUNCHES]
        assert other == [], f"{module} imports another interface: {other}"


def test_every_area_has_a_layer() -> None:
    areas = {_area(m) for m in MODULES if m.count(".") >= 1}
    assert areas - set(LAYERS) == set(), "a new area needs its place in DESIGN.md and LAYERS"
