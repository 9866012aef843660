"""No two modules of certpolicy import each other, directly or around a circle.

Every ``import`` statement counts: at module level, inside a function (a lazy import is still a
dependency) and under ``if TYPE_CHECKING``. A circle makes a module's import order matter and its
parts impossible to use apart (localcluster's cluster.py and node.py were one: node.py imported the
cluster's process helpers, cluster.py imported node.py to start a node; the helpers are in
procs.py now and node.py sees the cluster through a Protocol).
"""

from __future__ import annotations

import ast
from pathlib import Path

from paths import REPO

PACKAGE_ROOT = REPO / "operator"

#: Circles left on purpose, each with its reason (none: the last one, plugin/status.py and
#: plugin/policysecrets.py, went when a policy's row moved to plugin/policyrows.py).
KNOWN: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in (PACKAGE_ROOT / "certpolicy").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)  # a submodule, or a name (dropped below)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.add(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_circles_finds_a_circle_and_its_members():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]


def test_no_import_circles_in_certpolicy():
    graph = import_graph()
    assert len(graph) > 50 and "certpolicy.localcluster.node" in graph
    unexpected = [sorted(c) for c in circles(graph) if c not in KNOWN]
    assert unexpected == []
