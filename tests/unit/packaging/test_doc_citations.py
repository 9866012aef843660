"""Every test the docs cite exists: a renamed or deleted test must not leave a dangling citation.

A citation is ``FILE.py::test_name`` in README.md or docs/*.md: ``tests/...`` paths are taken as
they are; a bare file name (``test_faults.py::...``, as the tables in reliability.md write them)
must name exactly one file under ``tests/``. The test is found by parsing the file (a module-level
or class-level ``def``/``async def``), so nothing is imported or run.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from paths import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CITATION = re.compile(r"(?<![\w/.-])((?:tests/)?[\w/.-]*?\w+\.py)::(test_\w+)")


def citations() -> list[tuple[str, int, str, str]]:
    """(doc, line, file as written, test name) for every citation."""
    found = []
    for doc in DOCS:
        for n, line in enumerate(doc.read_text().splitlines(), start=1):
            for m in CITATION.finditer(line):
                found.append((str(doc.relative_to(REPO)), n, m.group(1), m.group(2)))
    return found


def resolve(written: str) -> list[Path]:
    if written.startswith("tests/"):
        path = REPO / written
        return [path] if path.is_file() else []
    return sorted((REPO / "tests").rglob(Path(written).name)) if "/" not in written else \
        sorted(p for p in (REPO / "tests").rglob(Path(written).name) if p.as_posix().endswith(written))


@cache
def defined_in(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in tree.body:
        bodies = [node] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else \
            [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))] \
            if isinstance(node, ast.ClassDef) else []
        names.update(b.name for b in bodies)
    return frozenset(names)


def test_the_docs_cite_tests():
    # Not vacuous: the docs cite a few dozen tests; a broken pattern would find none.
    assert len(citations()) >= 20, citations()


@pytest.mark.parametrize("doc, line, written, name", citations(),
                         ids=[f"{d}:{n}:{t}" for d, n, _, t in citations()])
def test_every_cited_test_exists(doc, line, written, name):
    files = resolve(written)
    assert len(files) == 1, f"{doc}:{line}: {written} names {len(files)} files under tests/ ({files})"
    assert name in defined_in(files[0]), f"{doc}:{line}: {written} has no test {name}"


def test_a_dangling_citation_is_caught(tmp_path):
    """The checks above fail for a renamed test and for a file that is not there."""
    assert "test_a_dangling_citation_is_caught" in defined_in(Path(__file__))
    assert "test_renamed_away" not in defined_in(Path(__file__))
    assert resolve("tests/unit/packaging/no_such_file.py") == []
    assert resolve("no_such_file.py") == []
    line = "see `tests/integration/test_x.py::test_y` and test_faults.py::test_z[param]"
    assert [(m.group(1), m.group(2)) for m in CITATION.finditer(line)] == [
        ("tests/integration/test_x.py", "test_y"), ("test_faults.py", "test_z")]
