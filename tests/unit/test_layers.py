"""Imports go down only (docs/architecture.md, *Layers*): a module of a layer imports its own layer
and the layers below it, never one above, so each layer can be read, tested and changed with
only what is under it in mind. Every ``import`` is followed, at module level or inside a function.

`pytest tests/unit/test_layers.py` names each import that runs up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "certpolicy"

#: Bottom to top. Equal ranks may import each other; a lower rank never imports a higher one.
#: The ground floor holds modules every layer may use and that use no layer.
RANK = {
    "timestamps": 0, "environment": 0, "conditions": 0, "interning": 0,
    "pki": 1,
    "policy": 2,
    "rotation": 3,
    "kube": 4,
    "inventory": 5,
    "metrics": 5,  # reads policy.report; only the handlers record into it
    "handlers": 6,
}
#: Never imports kopf or the kubernetes client: unit-tested in milliseconds, shared with the CLIs.
PURE = ("pki", "policy", "rotation")


def _part(module: str) -> str | None:
    """The top-level part of ``certpolicy.X...`` (a package or a top-level module)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "certpolicy" and len(parts) > 1 else None


def arrows() -> Iterator[tuple[str, str, str]]:
    """(file, its part, imported module) for every import of certpolicy, and of kopf/kubernetes."""
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        part = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield str(rel), part, node.module
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    yield str(rel), part, alias.name


def test_imports_only_go_down():
    up = []
    for file, part, module in arrows():
        target = _part(module)
        if part not in RANK or target is None or target == part:
            continue
        if target not in RANK or RANK[target] > RANK[part]:
            up.append(f"{file} ({part}) imports {module}")
    assert not up, "imports that run up the layers:\n" + "\n".join(up)


def test_the_pure_layers_import_neither_kopf_nor_kubernetes():
    bad = [f"{file} imports {module}" for file, part, module in arrows()
           if part in PURE and module.split(".")[0] in ("kopf", "kubernetes")]
    assert not bad, bad


def test_the_check_sees_every_layer():
    """A renamed or new layer folder must get a rank, or the check above would skip it."""
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert {"pki", "policy", "rotation", "kube", "inventory", "handlers"} <= folders
    assert any(_part(m) == "kube" for _, part, m in arrows() if part == "inventory"), "no arrow read at all"
