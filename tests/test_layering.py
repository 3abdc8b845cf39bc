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


def test_no_module_of_the_package_or_the_rules_is_over_500_lines():
    """A newcomer reads a module whole: none of gradlint/ or rules/ is over 500 lines."""
    root = GRAPH.parent.parent
    paths = [*(root / "gradlint").rglob("*.py"), *(root / "rules").glob("*.py")]
    sizes = {str(p.relative_to(root)): len(p.read_text(encoding="utf-8").splitlines()) for p in paths}
    assert len(sizes) > 60
    assert {p: n for p, n in sizes.items() if n > 500} == {}


PACKAGE = GRAPH.parent
RULES = PACKAGE.parent / "rules"


def _package_modules() -> dict:
    """Every module of gradlint (the rules as gradlint.rules.*), by dotted name."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    for path in RULES.glob("*.py"):
        out["gradlint.rules" + ("" if path.stem == "__init__" else "." + path.stem)] = path
    return out


def test_the_package_has_no_import_cycle_counting_imports_inside_functions():
    """Imports point downward only: text < diagnostics/settings < graph/flow/rules <
    suppressions < the single-file pipeline (engine) < fixes < cache/notebooks < run <
    apply < server/cli. An import inside a function counts: it only hides a cycle."""
    modules = _package_modules()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    g = nx.DiGraph()
    for name, path in modules.items():
        g.add_node(name)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gradlint"):
                targets = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("gradlint")]
            else:
                continue
            for target in targets:
                dep = owner(target)
                # a module's own package (gradlint/__init__.py: names, no imports) is not a cycle
                if dep and dep != name and not name.startswith(dep + "."):
                    g.add_edge(name, dep)
    assert len(g) > 60
    assert nx.is_directed_acyclic_graph(g), sorted(nx.simple_cycles(g))[:5]
    # the pipeline knows nothing of runs, caches, fixes or notebooks
    below_pipeline = nx.descendants(g, "gradlint.engine")
    assert not below_pipeline & {
        "gradlint.run",
        "gradlint.cache",
        "gradlint.fixes",
        "gradlint.notebook",
        "gradlint.apply",
        "gradlint.cli",
        "gradlint.server",
    }, below_pipeline
    # the command line sits on top: nothing outside gradlint/cli/ imports it (but `python -m gradlint`)
    cli = {n for n in modules if n == "gradlint.cli" or n.startswith("gradlint.cli.")}
    assert len(cli) > 1
    assert not {p for c in cli for p in g.predecessors(c)} - cli - {"gradlint.__main__"}
    # the text home is a leaf
    assert not [d for d in g.successors("gradlint.text") if d != "gradlint"]
