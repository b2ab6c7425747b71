"""No import cycle anywhere in ``src/kiosk``: the modules form a graph that flows one way.

The graph is read from the source with :mod:`ast`, not by importing it, so a cycle that today
only works thanks to import order (or a lazy import inside a function) fails here too. What counts
as an edge ``a → b``:

- every ``import kiosk.x`` / ``from kiosk.x import y`` in ``a``, at module level or inside a
  function or class (a function-level import is still a dependency: it only runs later);
  ``from kiosk.x import y`` points at the module ``kiosk.x.y`` when there is one, else at
  ``kiosk.x`` (the package's ``__init__``);
- NOT the imports under ``if TYPE_CHECKING:``: they never run, and with
  ``from __future__ import annotations`` they are how a module names a type without depending
  on its module at run time;
- NOT the implicit import of a parent package: ``import kiosk.store.engine`` runs
  ``kiosk/store/__init__.py`` first, but a package ``__init__`` re-exporting its own submodules
  is the normal shape of a package, not a cycle. A submodule that imports its own package's
  ``__init__`` (``from kiosk.store import Database`` inside ``kiosk.store.queue``) is an
  explicit edge, and makes a cycle when that ``__init__`` imports the submodule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT_PACKAGE = "kiosk"

Graph = dict[str, set[str]]


def module_names(src: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``src``, by dotted name (a package by its ``__init__``)."""
    modules: dict[str, Path] = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of a module, at any depth, except those under ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the ``else:`` branch does run
            continue
        stack.extend(ast.iter_child_nodes(node))


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module ``from ... import`` names, relative imports resolved against ``module``."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph(modules: Mapping[str, Path], package: str) -> Graph:
    """``module → the package's modules it imports`` (see the module docstring for what counts)."""
    graph: Graph = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                source = _absolute(name, is_package, node)
                targets = [f"{source}.{alias.name}" for alias in node.names]
                targets = [t if t in modules else source for t in targets]
            for target in targets:
                # ``import kiosk.a.b.Name``-like spellings do not exist; walk up to the deepest module.
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target.split(".")[0] == package and target != name:
                    graph[name].add(target)
    return graph


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one: ``[a, b, ..., a]``, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm; src/kiosk is far from the recursion limit
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(_one_cycle(graph, set(component), component[0]) for component in components)


def _one_cycle(graph: Mapping[str, set[str]], component: set[str], start: str) -> list[str]:
    """The shortest path from ``start`` back to itself inside its component (breadth first)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"{start} is in a component without a cycle")  # Tarjan said otherwise


def describe(cycles: list[list[str]]) -> str:
    return "\n".join(" → ".join(cycle) for cycle in cycles)


def test_src_kiosk_has_no_import_cycle() -> None:
    modules = module_names(SRC, ROOT_PACKAGE)
    assert "kiosk.cli.app" in modules and "kiosk.store" in modules  # the walk found the tree
    cycles = find_cycles(import_graph(modules, ROOT_PACKAGE))
    assert not cycles, "import cycles in src/kiosk (a → b: a imports b):\n" + describe(cycles)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {
                "pkg/__init__.py": "from pkg.app import main\n",
                "pkg/app.py": "from pkg import serve\n",
                "pkg/serve.py": "def serve() -> None:\n    from pkg.app import main\n",
            },
            [["pkg.app", "pkg.serve", "pkg.app"]],
            id="function-level import",
        ),
        pytest.param(
            {"pkg/__init__.py": "from pkg.a import x\n", "pkg/a.py": "from pkg import y\nx = 1\n"},
            [["pkg", "pkg.a", "pkg"]],
            id="submodule importing its package",
        ),
        pytest.param(
            {"pkg/__init__.py": "", "pkg/a.py": "from . import b\n", "pkg/b.py": "from .a import x\n"},
            [["pkg.a", "pkg.b", "pkg.a"]],
            id="relative imports",
        ),
        pytest.param(
            {
                "pkg/__init__.py": "from pkg.a import x\n",
                "pkg/a.py": "x = 1\n",
                "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.c import C\n",
                "pkg/c.py": "import pkg.b\n",
            },
            [],
            id="package re-exporting its submodule, TYPE_CHECKING import",
        ),
    ],
)
def test_the_check_finds_cycles_and_only_cycles(
    tmp_path: Path, files: dict[str, str], expected: list[list[str]]
) -> None:
    _write(tmp_path, files)
    assert find_cycles(import_graph(module_names(tmp_path, "pkg"), "pkg")) == expected
