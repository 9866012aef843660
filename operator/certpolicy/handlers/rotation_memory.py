"""What the rotation driver remembers between two passes of one policy (in memory only)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from certpolicy.rotation import ProbeResult


@dataclass
class RotationMemory:
    """Probe results between two decisions: the machine records them in status once told, so a
    restart loses at most one round of probes (they are simply run again). Probes run on their
    own threads (``handlers.probes``), hence the lock."""

    probe_results: list[ProbeResult] = field(default_factory=list)
    in_flight: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def start(self, probe_id: str) -> bool:
        """Mark a probe as running; False when it already is."""
        with self.lock:
            if probe_id in self.in_flight:
                return False
            self.in_flight.add(probe_id)
            return True

    def finish(self, result: ProbeResult) -> None:
        with self.lock:
            self.in_flight.discard(result.probe)
            self.probe_results.append(result)

    def drain(self) -> tuple[ProbeResult, ...]:
        """The results that arrived since the last call (each is handed to the machine once)."""
        with self.lock:
            out, self.probe_results = tuple(self.probe_results), []
            return out
