"""The name extractor the dashboard and alert checks rely on (tests/promql.py)."""

from __future__ import annotations

import pytest

from promql import names


def test_metrics_matchers_and_grouping():
    n = names('sum by (namespace, reason) (certpolicy_findings{policy=~"a|b", severity!="Info"}) '
              '/ on(policy) group_left(team) max without (le) (x_total) > 0 and changes(y[6h]) == 0')
    assert n.metrics == {"certpolicy_findings": {"policy", "severity"}, "x_total": set(), "y": set()}
    assert n.grouping == {"namespace", "reason", "policy", "team"}
    assert n.dropped == {"le"}  # without: aggregated away, not a label the result carries


def test_functions_numbers_durations_and_strings_are_not_names():
    n = names('histogram_quantile(0.99, sum(rate(a_bucket{job="by"}[5m])) by (le)) - time() < 14 * 86400 '
              'or vector(0) + label_replace(b, "dst", "$1", "src", "(.*)")')
    assert set(n.metrics) == {"a_bucket", "b"} and n.metrics["a_bucket"] == {"job"}
    assert n.grouping == {"le"}


def test_garbage_is_refused():
    with pytest.raises(ValueError):
        names("sum(x) ! y")
