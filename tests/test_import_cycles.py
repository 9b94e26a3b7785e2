"""No import cycles among gan_jax's modules, read from the source with ``ast`` (nothing is imported).

Every ``import a.b`` / ``from a import b`` statement counts, at the top level or inside a function
(a function-level import is a cycle postponed, not removed), relative imports resolved. ``from pkg
import name`` is an edge to ``pkg`` and to ``pkg.name`` when that is a module; ``import a.b.c`` is
an edge to the longest of ``a.b.c``, ``a.b``, ``a`` that is a module of the package. A package's
``__init__`` is its own module; its imports of its own submodules (re-exports) are not counted, as
a submodule's import of a sibling does not go through the package's ``__init__`` in this reading.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "gan_jax"


@dataclasses.dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    where: str  # path:line of the import statement

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst} ({self.where})"


def package_modules(pkg_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Dotted module name -> file, for every ``.py`` under ``pkg_dir`` (``a/__init__.py`` is ``a``)."""
    root = pkg_dir.parent
    out = {}
    for path in sorted(pkg_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        return [target] + [f"{target}.{alias.name}" for alias in node.names]
    return []


def import_edges(modules: dict[str, pathlib.Path], root: pathlib.Path) -> dict[str, list[Edge]]:
    """Module -> its import edges to other modules of the package (parent -> own submodule left out).

    ``root``: the folder that holds the package (edges name files relative to it)."""
    graph: dict[str, list[Edge]] = {m: [] for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            for name in _imported_names(node, module, is_package):
                while name and name not in modules:  # the longest module name that `name` starts with
                    name = name.rpartition(".")[0]
                if not name or name == module or name.startswith(module + "."):
                    continue
                edge = Edge(module, name, f"{path.relative_to(root)}:{node.lineno}")
                if all(e.dst != name for e in graph[module]):
                    graph[module].append(edge)
    return graph


def cycles(graph: dict[str, list[Edge]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # iterative, so that a deep graph cannot hit the recursion limit
        work = [(v, iter(graph[v]))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        while work:
            node, edges = work[-1]
            edge = next(edges, None)
            if edge is not None:
                w = edge.dst
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph[w])))
                elif w in on_stack:
                    low[node] = min(low[node], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return sorted(found)


def describe(graph: dict[str, list[Edge]], component: list[str]) -> str:
    members = set(component)
    edges = [str(e) for m in component for e in graph[m] if e.dst in members]
    return "cycle: " + " <-> ".join(component) + "\n" + "\n".join("    " + e for e in edges)


def test_gan_jax_has_no_import_cycles():
    modules = package_modules(PACKAGE)
    assert "gan_jax.data.source" in modules and "gan_jax" in modules, sorted(modules)
    graph = import_edges(modules, PACKAGE.parent)
    found = cycles(graph)
    assert not found, (f"{len(found)} import cycle(s) among the {len(modules)} modules of gan_jax "
                       "(each with the imports that close it):\n" + "\n".join(describe(graph, c) for c in found))


def test_the_checker_sees_function_level_relative_and_from_package_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.a import A\n")  # a re-export: not a cycle
    (pkg / "a.py").write_text("import pkg.b\nA = 1\n")
    (pkg / "b.py").write_text("def f():\n    from . import c\n")  # function level, relative
    (pkg / "c.py").write_text("from pkg import a\n")  # an edge to pkg (__init__) and to pkg.a
    (pkg / "d.py").write_text("from pkg.sub.e import x\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "e.py").write_text("from .. import d\nx = 1\n")  # relative, two levels
    graph = import_edges(package_modules(pkg), tmp_path)
    assert {e.dst for e in graph["pkg.c"]} == {"pkg", "pkg.a"}
    assert {e.dst for e in graph["pkg"]} == set()
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"], ["pkg.d", "pkg.sub.e"]]
