"""Figures a test measured (seconds, threads, connections, RSS), printed in the session summary.

``print`` is not enough: the in-process operator (kopf's runner) swaps ``sys.stdout`` while it
runs, so a figure printed then would be lost. The summary is printed whatever the capture mode.
"""

from __future__ import annotations

FIGURES: list[str] = []


def record(line: str) -> None:
    FIGURES.append(line)
