"""What the rotation driver remembers between two passes of one policy (in memory only)."""

from __future__ import annotations

from dataclasses import dataclass, field

from certpolicy.rotation import ProbeResult


@dataclass
class RotationMemory:
    """Probe results between two decisions: the machine records them in status once told, so a
    restart loses at most one round of probes (they are simply run again)."""

    probe_results: list[ProbeResult] = field(default_factory=list)
