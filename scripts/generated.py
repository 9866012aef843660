"""Writing a generated file, or (``--check``) failing when the committed one is stale: one home
for the three generators (CRD block, CRD reference, chart README) that tests and CI run with
``--check``."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(path: Path, text: str, script: str, current: str | None = None) -> int:
    """Write ``text`` to ``path``; with ``--check`` on the command line write nothing and return 1
    when ``path`` (or ``current``, its text as already read) differs from it."""
    if "--check" in sys.argv:
        if current is None:
            current = path.read_text() if path.exists() else None
        if current != text:
            print(f"{path} is out of date: run python scripts/{script}", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return 0
