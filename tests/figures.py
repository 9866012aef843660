"""Figures a test measured (seconds, threads, connections, RSS), printed in the session summary.

``print`` is not enough: pytest captures it, and an in-process operator (kopf's runner) swaps
``sys.stdout`` while it runs. The summary is printed whatever the capture mode; under pytest-xdist
each worker hands its figures to the controller at the end (conftest's ``pytest_sessionfinish``),
which prints them prefixed with the worker's name.
"""

from __future__ import annotations

FIGURES: list[str] = []


def record(line: str) -> None:
    FIGURES.append(line)
