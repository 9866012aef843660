"""Every test that runs keytool carries ``certgen.needs_keytool``, so the marker is true: without a
JRE those tests are skipped, and every other test (the read tests use tests/data/java) still runs.

Found by reading the test files (nothing is imported or run): a test runs keytool when it calls one
of certgen's keytool runners, a ``subprocess`` call whose first argument starts with ``"keytool"``
or ``KEYTOOL``, or a function of its own module that does (followed to a fixed point). Fixtures are not followed:
a fixture that runs keytool must skip itself without it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from paths import REPO

#: certgen's functions that run keytool.
RUNNERS = {"java_keystore", "java_truststore", "keytool_list", "_keytool"}


def _calls(node: ast.AST) -> set[str]:
    names = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            f = n.func
            names.add(f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else "")
            first = n.args[0] if n.args else None
            if isinstance(first, ast.List) and first.elts:
                head = first.elts[0]
                if (isinstance(head, ast.Constant) and head.value == "keytool") or \
                        (isinstance(head, ast.Name) and head.id == "KEYTOOL") or \
                        (isinstance(head, ast.BoolOp) and any(isinstance(v, ast.Name) and v.id == "KEYTOOL"
                                                             for v in head.values)):
                    names.add("_keytool")
    return names


def _marked(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any("needs_keytool" in ast.unparse(d) for d in fn.decorator_list)


def unmarked_keytool_tests(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    runners = set(RUNNERS)
    while True:  # module helpers that run keytool, to a fixed point
        more = {f.name for f in functions if not f.name.startswith("test") and _calls(f) & runners} - runners
        if not more:
            break
        runners |= more
    return [f.name for f in functions if f.name.startswith("test_") and _calls(f) & runners and not _marked(f)]


def test_every_test_that_runs_keytool_is_marked():
    files = sorted(p for p in (REPO / "tests").rglob("test_*.py") if "data" not in p.parts)
    unmarked = {str(p.relative_to(REPO)): names for p in files if (names := unmarked_keytool_tests(p))}
    assert unmarked == {}, f"add @certgen.needs_keytool to {unmarked}"


def test_the_scan_finds_keytool_calls(tmp_path):
    """Not vacuous: an unmarked test calling keytool, directly or through a helper, is found."""
    f = tmp_path / "test_x.py"
    f.write_text(
        "import subprocess, certgen\n"
        "def helper(d):\n    return certgen.keytool_list(d, 'pw')\n"
        "def test_direct():\n    subprocess.run(['keytool', '-list'])\n"
        "def test_through_helper():\n    helper(b'')\n"
        "@certgen.needs_keytool\ndef test_marked():\n    helper(b'')\n"
        "def test_golden():\n    certgen.golden_store('truststore.jks')\n")
    assert unmarked_keytool_tests(f) == ["test_direct", "test_through_helper"]
