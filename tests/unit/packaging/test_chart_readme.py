"""charts/certpolicy-operator/README.md is generated from the chart's schema and values
(scripts/gen_chart_readme.py): stale, or a value without a description, fails here."""

from __future__ import annotations

import subprocess
import sys

import pytest

from paths import REPO

SCRIPT = REPO / "scripts" / "gen_chart_readme.py"


@pytest.fixture
def gen(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import gen_chart_readme

    return gen_chart_readme


def test_chart_readme_is_generated_from_the_current_values():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_a_stale_readme_is_reported(gen, tmp_path, monkeypatch):
    stale = tmp_path / "README.md"
    stale.write_text(gen.render().replace("| `crds.keep` | boolean | `true` |", "| `crds.keep` | boolean | `false` |"))
    monkeypatch.setattr(gen, "OUT", stale)
    monkeypatch.setattr(sys, "argv", ["gen_chart_readme.py", "--check"])
    assert gen.main() == 1


def test_every_value_has_a_description_and_a_row(gen):
    assert gen.missing_descriptions() == []
    text = gen.render()
    for value in ("operator.probeAllow", "crds.keep", "serviceMonitor.metricRelabelings", "prometheusRule.alerts",
                  "networkPolicy.egress", "extraObjects", "rbac.aggregateToEdit", "podDisruptionBudget.maxUnavailable"):
        assert f"| `{value}` |" in text, value
