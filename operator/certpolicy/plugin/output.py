"""Tables, JSON and YAML for every verb: the same data, three renderings (``-o``)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    """kubectl-style columns: upper-case headers, left-aligned, three spaces apart."""
    cells = [[str(h).upper() for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        out.write("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")


#: -o values; every verb takes all three.
FORMATS = ("table", "json", "yaml")


def structured(args: Any) -> bool:
    """-o json or -o yaml: the document instead of the table."""
    return getattr(args, "output", "table") in ("json", "yaml")


def dump(doc: object, out: TextIO, fmt: str = "json") -> None:
    """``doc`` as JSON (2-space indent) or YAML (block style, keys in the document's order)."""
    if fmt == "yaml":
        import yaml

        yaml.safe_dump(doc, out, sort_keys=False, default_flow_style=False, allow_unicode=True)
        return
    json.dump(doc, out, indent=2, sort_keys=False)
    out.write("\n")


#: A shell's status for a process ended by SIGPIPE (128 + 13): what `cmd | head` reports for any tool.
EXIT_BROKEN_PIPE = 141


def reader_gone() -> int:
    """stdout's reader closed it (``| head``): stop writing, quietly. Python ignores SIGPIPE, so
    the write raised BrokenPipeError; stdout now points at /dev/null, or the interpreter's own
    flush at exit would print a second error."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def until_reader_gone(command: Callable[[], int]) -> int:
    """``command()``'s exit code, its output flushed here, where a closed pipe is caught (not at
    exit): ``certpolicy check -o json | head`` and ``kubectl certpolicy status | head`` end with
    :data:`EXIT_BROKEN_PIPE` and no traceback. Both entry points (``certpolicy.cli``,
    ``certpolicy.plugin.cli``) run their command through it."""
    try:
        code = command()
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # the reader has what it wanted
        return reader_gone()
