"""The graph package's modules import only downward, and none is large."""

import ast
from pathlib import Path

import networkx as nx

GRAPH = Path(__file__).resolve().parent.parent / "gradlint" / "graph"


def _imports(path: Path) -> set[str]:
    """gradlint.graph modules imported anywhere in the file (inside functions too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("gradlint.graph."):
                out.add(node.module.split(".")[2])
            elif node.module == "gradlint.graph":
                out |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[2] for a in node.names if a.name.startswith("gradlint.graph.")}
    return out


def test_graph_modules_import_without_cycles():
    g = nx.DiGraph()
    modules = {p.stem: p for p in GRAPH.glob("*.py") if p.stem != "__init__"}
    for name, path in modules.items():
        g.add_node(name)
        for dep in _imports(path):
            if dep in modules and dep != name:
                g.add_edge(name, dep)
    assert nx.is_directed_acyclic_graph(g), list(nx.simple_cycles(g))
    # the driver sits on top: nothing in the package imports it
    assert list(g.predecessors("builder")) == []


def test_no_graph_module_is_over_about_500_lines():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in GRAPH.glob("*.py")}
    assert max(sizes.values()) <= 500, sizes
