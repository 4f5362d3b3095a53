"""The import graph of `smapi/`: no cycle, and no import from a lower layer to a higher one.

The graph is read from the source with `ast`, so it sees every import a running program can make: module-level
ones, the ones inside functions (which hide a cycle from Python but not from a reader), and
`importlib.import_module("literal")`. `from package import name` counts as importing the submodule
`package.name` when there is one, else as importing `package`. Imports under `if TYPE_CHECKING:` never run:
they are left out of the cycle check (a type checker resolves those), but they still must respect the layers.

An import of `a.b.c` is an edge to `a.b.c` only, not to the packages `a` and `a.b` that Python initialises on
the way: package `__init__` modules here are kept light (lazy attribute loaders), and counting them would make
every module depend on `smapi/__init__.py`, the top of the stack.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent / "smapi"

#: The layers of smapi, lowest first; docs/architecture.md documents this order. A module may import from its
#: own layer and from lower ones, never from a higher one (not even inside a function). Modules directly in
#: `smapi/` (smapi/__init__.py, smapi.client, smapi.demo, ...) form the top layer, `TOP`.
LAYERS: List[str] = [
    "smapi.common",
    "smapi.interface",
    "smapi.vhd",
    "smapi.datapath",
    "smapi.core",
    "smapi.sr",
    "smapi.drivers",
    "smapi.examples",
    "smapi.rpc",
    "smapi.transfer",
    "smapi.testing",
    "smapi.cli",
]
TOP = len(LAYERS)

#: Edges (importer, imported) allowed to go upwards. Empty: every layer imports only its own and lower ones. An
#: entry must name one exact edge, with a comment saying why it cannot go yet.
KNOWN_ELSEWHERE: Set[Tuple[str, str]] = set()


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    line: int
    type_checking: bool  # under `if TYPE_CHECKING:`: never executed

    def __str__(self) -> str:
        where = " (TYPE_CHECKING)" if self.type_checking else ""
        return f"{self.importer}:{self.line} -> {self.imported}{where}"


def module_names(root: Path = ROOT) -> Dict[str, Path]:
    """Every module of the package, by dotted name (a package is named by its `__init__.py`)."""
    out: Dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _is_import_module_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module" and bool(node.args)
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))


def _imports(tree: ast.AST) -> Iterable[Tuple[ast.AST, bool]]:
    """Import nodes (and `importlib.import_module("...")` calls) anywhere in the tree, with whether they sit
    under `if TYPE_CHECKING:`."""
    stack: List[Tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, guarded = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)) or _is_import_module_call(node):
            yield node, guarded
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend((child, True) for child in node.body)
            stack.extend((child, guarded) for child in node.orelse)
            continue
        stack.extend((child, guarded) for child in ast.iter_child_nodes(node))


def _base_of(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _targets(module: str, is_package: bool, node: ast.AST, known: Set[str]) -> List[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.Call):
        return [node.args[0].value]  # type: ignore[attr-defined]
    assert isinstance(node, ast.ImportFrom)
    base = _base_of(module, is_package, node)
    out = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        out.append(sub if sub in known else base)
    return out


def import_edges(root: Path = ROOT) -> List[Edge]:
    """Every import from one smapi module of another (imports of other packages are ignored)."""
    modules = module_names(root)
    known = set(modules)
    top = root.name
    edges: List[Edge] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        for node, guarded in _imports(tree):
            for target in _targets(name, is_package, node, known):
                if target != name and (target == top or target.startswith(top + ".")):
                    # `import smapi.x.y` of a name that is no module (a typo, a removed module) is caught by the
                    # tests that run it; here it counts as the nearest existing package.
                    while target not in known and "." in target:
                        target = target.rsplit(".", 1)[0]
                    edges.append(Edge(name, target, getattr(node, "lineno", 0), guarded))
    return edges


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One cycle of the directed graph as [a, b, ..., a], or None when it has none."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour: Dict[str, int] = {}
    for start in sorted(graph):
        if colour.get(start, WHITE) != WHITE:
            continue
        path = [start]
        colour[start] = GREY
        iters = [iter(sorted(graph.get(start, ())))]
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                colour[path.pop()] = BLACK
                iters.pop()
                continue
            state = colour.get(nxt, WHITE)
            if state == GREY:
                return path[path.index(nxt):] + [nxt]
            if state == WHITE:
                colour[nxt] = GREY
                path.append(nxt)
                iters.append(iter(sorted(graph.get(nxt, ()))))
    return None


def layer_of(module: str) -> int:
    for i, prefix in enumerate(LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            return i
    return TOP


def layer_name(index: int) -> str:
    return LAYERS[index] if index < TOP else "top-level smapi modules"


def upward(edges: Iterable[Edge]) -> List[Edge]:
    """The edges that go from a lower layer to a higher one."""
    return [e for e in edges if layer_of(e.importer) < layer_of(e.imported)]


def runtime_graph(edges: Iterable[Edge]) -> Dict[str, Set[str]]:
    graph: Dict[str, Set[str]] = {}
    for e in edges:
        if not e.type_checking:
            graph.setdefault(e.importer, set()).add(e.imported)
    return graph


# ---------------------------------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def edges() -> List[Edge]:
    return import_edges()


def test_no_import_cycle(edges: List[Edge]) -> None:
    cycle = find_cycle(runtime_graph(edges))
    if cycle is not None:
        lines = {(e.importer, e.imported): e.line for e in edges}
        steps = [f"{a}:{lines[(a, b)]} imports {b}" for a, b in zip(cycle, cycle[1:])]
        pytest.fail("import cycle (function-level imports count):\n  " + "\n  ".join(steps))


def test_no_import_from_a_lower_layer_to_a_higher_one(edges: List[Edge]) -> None:
    bad = [e for e in upward(edges) if (e.importer, e.imported) not in KNOWN_ELSEWHERE]
    if bad:
        pytest.fail("imports from a lower layer to a higher one (order: see LAYERS):\n  " + "\n  ".join(
            f"{e}  [{layer_name(layer_of(e.importer))} < {layer_name(layer_of(e.imported))}]" for e in bad))


def test_known_exceptions_still_exist(edges: List[Edge]) -> None:
    """An allow-listed edge that is gone must leave the list, so it cannot come back unnoticed."""
    present = {(e.importer, e.imported) for e in upward(edges)}
    assert present >= KNOWN_ELSEWHERE, f"no longer imported, remove from KNOWN_ELSEWHERE: {KNOWN_ELSEWHERE - present}"


def test_every_package_has_a_layer() -> None:
    """A new folder under smapi/ must be placed in LAYERS (else it would silently count as the top layer)."""
    folders = {p.parent for p in ROOT.rglob("__init__.py") if p.parent != ROOT}
    tops = {"smapi." + p.relative_to(ROOT).parts[0] for p in folders}
    assert tops <= set(LAYERS), f"packages with no layer: {sorted(tops - set(LAYERS))}"


# ---------------------------------------------------------------------------------------------------- the checker
def test_finds_a_cycle_in_a_synthetic_graph() -> None:
    graph = {"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) is None


def test_reads_function_level_and_relative_imports(tmp_path: Path) -> None:
    """A cycle hidden by a function-level `from . import` (and one by import_module) is an edge like any other;
    TYPE_CHECKING imports are not; `from pkg import name` names the submodule when there is one."""
    pkg = tmp_path / "smapi"
    (pkg / "sr").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sr" / "__init__.py").write_text("")
    (pkg / "sr" / "engine.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from smapi.sr.gc import collect\n"
        "def recover():\n    from . import recovery\n")
    (pkg / "sr" / "recovery.py").write_text("from smapi.sr import engine, VALUE\n")
    (pkg / "sr" / "gc.py").write_text("import importlib\nimportlib.import_module('smapi.sr.engine')\n")
    (pkg / "vhd.py").write_text("def f():\n    import smapi.sr.gc\n")
    found = import_edges(pkg)
    assert {(e.importer, e.imported, e.type_checking) for e in found} == {
        ("smapi.sr.engine", "smapi.sr.gc", True), ("smapi.sr.engine", "smapi.sr.recovery", False),
        ("smapi.sr.recovery", "smapi.sr.engine", False), ("smapi.sr.recovery", "smapi.sr", False),
        ("smapi.sr.gc", "smapi.sr.engine", False), ("smapi.vhd", "smapi.sr.gc", False)}
    assert find_cycle(runtime_graph(found)) == ["smapi.sr.engine", "smapi.sr.recovery", "smapi.sr.engine"]
    assert [(e.importer, e.imported) for e in upward(found)] == [("smapi.vhd", "smapi.sr.gc")]


def test_the_documented_layer_order_is_the_checked_one() -> None:
    """docs/architecture.md's layer table (lowest first) names exactly the layers this test enforces, in order."""
    doc = (ROOT.parent / "docs" / "architecture.md").read_text()
    table = doc.split("## The layers", 1)[1].split("\n## ", 1)[0]
    documented = [line.split("`")[1] for line in table.splitlines() if line.startswith("| `smapi.")]
    assert documented == LAYERS
