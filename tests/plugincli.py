"""``kubectl certpolicy`` as a user runs it in the integration tests: the installed plugin
executable, a process of its own, against a test cluster's kubeconfig."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PLUGIN = Path(sys.executable).parent / "kubectl-certpolicy"


def plugin(cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PLUGIN), *args, "--kubeconfig", str(cluster.kubeconfig)],
                          capture_output=True, text=True, timeout=120)
