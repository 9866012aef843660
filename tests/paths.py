"""Where things are in the repository (importable from any test directory; ``conftest`` is not)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CRD_FILE = REPO / "crds" / "certificatepolicies.certpolicy.io.yaml"
EXAMPLES = REPO / "examples"
