"""The package's layout holds: folders in layers, no import cycle, no hidden import.

The import graph is built with ``ast`` from every import statement in ``hooks`` — at module
level, under ``TYPE_CHECKING`` and inside functions alike: an import placed in a function
to dodge a cycle is still a cycle.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT, each

PACKAGE = ROOT / "hooks"

#: Each folder's layer: a module may import its own folder and the layers below its own.
#: ``hooks/__init__.py`` (the public API, resolved on first use) and ``hooks.version`` stand
#: apart: the first imports nothing at run time, the second nothing at all.
LAYERS = {
    "core": 0,
    "aws": 1,
    "suites": 2,
    "process": 3,
    "gate": 4,
    "evidence": 5,
    "adapters": 6,
    "cli": 7,
}
#: What a function-level import of a Greenlight module must say on its line or the line
#: above: that it is there for the cold start (or a process's start), not to dodge a cycle.
LAZY_MARKERS = ("cold start", "first use", "on use", "not at import", "start-up")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    in_function: bool
    type_only: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


class _Imports(ast.NodeVisitor):
    def __init__(self, name: str, is_package: bool, known: set[str]) -> None:
        self.name, self.known = name, known
        self.package = name if is_package else name.rpartition(".")[0]
        self.edges: list[Edge] = []
        self.depth = 0
        self.type_only = 0

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        test = ast.unparse(node.test)
        guarded = test in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        self.type_only += guarded
        for child in node.body:
            self.visit(child)
        self.type_only -= guarded
        for child in node.orelse:
            self.visit(child)

    def _add(self, target: str, node: ast.stmt) -> None:
        while target and target not in self.known:
            target = target.rpartition(".")[0]
        if target and target != self.name and target != "hooks":
            self.edges.append(
                Edge(self.name, target, node.lineno, self.depth > 0, self.type_only > 0)
            )

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        for alias in node.names:
            full = f"{module}.{alias.name}"
            self._add(full if full in self.known else module, node)


def import_graph() -> list[Edge]:
    found = modules()
    edges: list[Edge] = []
    for name, path in found.items():
        visitor = _Imports(name, path.name == "__init__.py", set(found))
        visitor.visit(ast.parse(path.read_text(), str(path)))
        edges.extend(visitor.edges)
    return edges


def folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else None


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def upward(edges: list[Edge]) -> Iterator[str]:
    for edge in edges:
        source, target = folder(edge.source), folder(edge.target)
        if source is None or target is None or source == target:
            continue
        if LAYERS[target] > LAYERS[source]:
            yield f"{edge.source}:{edge.line} imports {edge.target} ({source} is below {target})"


def test_the_graph_sees_every_kind_of_import() -> None:
    edges = import_graph()
    assert any(e.in_function for e in edges)
    assert any(e.type_only for e in edges)
    assert any(not e.in_function and not e.type_only for e in edges)


def test_no_import_cycle_counting_imports_inside_functions() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import() -> None:
    edges = [
        Edge("hooks.gate.a", "hooks.gate.b", 1, False, False),
        Edge("hooks.gate.b", "hooks.gate.c", 1, True, False),
        Edge("hooks.gate.c", "hooks.gate.a", 1, False, True),
    ]
    assert cycles(edges) == [["hooks.gate.a", "hooks.gate.b", "hooks.gate.c"]]


def test_no_folder_imports_a_folder_above_it() -> None:
    assert list(upward(import_graph())) == []


def test_an_upward_import_is_found() -> None:
    found = list(upward([Edge("hooks.core.settings", "hooks.gate.plan", 3, True, False)]))
    assert found == ["hooks.core.settings:3 imports hooks.gate.plan (core is below gate)"]


def test_every_module_lives_in_a_folder_of_a_layer() -> None:
    loose = [n for n in modules() if n.count(".") == 1 and n.split(".")[1] not in LAYERS]
    assert sorted(loose) == ["hooks.version"]


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_folder_says_what_it_holds_and_what_it_may_import(name: str) -> None:
    tree = ast.parse((PACKAGE / name / "__init__.py").read_text())
    doc = ast.get_docstring(tree) or ""
    assert "May import" in doc, doc
    exported = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(getattr(t, "id", "") == "__all__" for t in node.targets)
    ]
    assert exported, f"hooks/{name}/__init__.py has no __all__"


def unexplained_lazy_imports(source: str) -> list[int]:
    """Lines of function-level imports of Greenlight modules whose block of imports has no
    comment saying why on the line above it (or on its first line)."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for block in _import_blocks(node.body):
            ours = [
                n
                for n in block
                if (isinstance(n, ast.ImportFrom) and (n.module or "").startswith("hooks"))
                or (isinstance(n, ast.Import) and any(a.name.startswith("hooks") for a in n.names))
            ]
            said = " ".join(lines[max(block[0].lineno - 2, 0) : block[0].lineno]).lower()
            if ours and not any(marker in said for marker in LAZY_MARKERS):
                found += [n.lineno for n in ours]
    return found


def _import_blocks(body: list[ast.stmt]) -> Iterator[list[ast.stmt]]:
    block: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            block.append(node)
            continue
        if block:
            yield block
        block = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue  # a nested function is walked as a function of its own
        for handler in getattr(node, "handlers", ()):  # imports under try, if, with
            yield from _import_blocks(handler.body)
        for field in ("body", "orelse", "finalbody"):
            yield from _import_blocks(getattr(node, field, None) or [])
    if block:
        yield block


def test_a_function_level_import_of_greenlight_says_why() -> None:
    unexplained = [
        f"{name}:{line}"
        for name, path in modules().items()
        for line in unexplained_lazy_imports(path.read_text())
    ]
    assert unexplained == []


def test_an_unexplained_function_level_import_is_found() -> None:
    source = (
        "def f():\n"
        "    # imported on first use: the cold start\n"
        "    from hooks.core import log\n"
        "    from hooks.core import redact\n"
        "\n"
        "def g():\n"
        "    x = 1\n"
        "    from hooks.gate import plan\n"
    )
    assert unexplained_lazy_imports(source) == [8]


def test_every_module_names_its_public_names() -> None:
    missing = [
        name
        for name, path in modules().items()
        if "__all__" not in path.read_text() and not name.endswith("__main__")
    ]
    assert each(modules())
    assert missing == []


def _exported() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, path in modules().items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                getattr(target, "id", "") == "__all__" for target in node.targets
            ):
                found[name] = set(ast.literal_eval(node.value))
    return found


def test_a_module_imports_only_what_another_names_in_its_all() -> None:
    exported, known = _exported(), set(modules())
    private = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.module not in exported:
                continue
            for alias in node.names:
                whole = f"{node.module}.{alias.name}"
                if alias.name not in exported[node.module] and whole not in known:
                    private.append(f"{name}:{node.lineno} imports {whole}")
    assert each(exported)
    assert private == []


#: A function this long says why it is one piece (a ``# Long:`` comment in its body).
MOST_LINES = 66


def test_a_long_function_says_why_it_is_one_piece() -> None:
    unexplained = []
    for name, path in modules().items():
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = node.end_lineno - node.lineno + 1 if node.end_lineno else 0
            body = "\n".join(source.splitlines()[node.lineno - 1 : node.end_lineno])
            if length > MOST_LINES and "# Long: " not in body:
                unexplained.append(f"{name}.{node.name}: {length} lines")
    assert unexplained == []


def _readme_flow() -> tuple[dict[str, str], list[tuple[str, str, bool]]]:
    text = (ROOT / "README.md").read_text()
    start = text.index("### The code, along one event")
    block = text[
        text.index("```mermaid", start) : text.index("```\n", text.index("```mermaid", start) + 10)
    ]
    nodes = dict(re.findall(r'(\w+)\["(hooks\.[\w.]+):', block))
    edges = [
        (a, b, arrow == "-.->")
        for a, arrow, b in re.findall(
            r"^\s*(\w+)(?:\[[^\]]*\])?\s*(-->|-\.->)\s*(\w+)", block, re.M
        )
    ]
    return nodes, edges


def test_the_readmes_module_diagram_is_the_code() -> None:
    """Every box names a module that exists; every arrow is an import the graph finds (a
    dotted arrow: the source starts the target by its module name)."""
    nodes, edges = _readme_flow()
    known = modules()
    assert each(edges)
    assert [m for m in nodes.values() if m not in known] == []
    imports = {(e.source, e.target) for e in import_graph()}
    wrong = []
    for a, b, starts in edges:
        source, target = nodes[a], nodes[b]
        if starts:
            if f'"{target}"' not in known[source].read_text():
                wrong.append(f"{source} does not start {target}")
        elif (source, target) not in imports:
            wrong.append(f"{source} does not import {target}")
    assert wrong == []
    layers = {folder(m) for m in nodes.values()}
    assert layers >= set(LAYERS) - {"cli", "core"}  # core is under every box
