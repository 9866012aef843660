"""The operator's re-check intervals from the environment (``certpolicy.environment``)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

from certpolicy.environment import ERROR_RETRY, INTERVALS, NOT_MANAGED_RECHECK, PROBE_RETRY


def test_defaults_are_thirty_seconds_and_each_interval_has_its_own_variable(monkeypatch) -> None:
    for interval in INTERVALS:
        monkeypatch.delenv(interval.env, raising=False)
    assert [i.delta() for i in INTERVALS] == [dt.timedelta(seconds=30)] * 3
    assert {i.env for i in (PROBE_RETRY, NOT_MANAGED_RECHECK, ERROR_RETRY)} == {
        "CERTPOLICY_PROBE_RETRY", "CERTPOLICY_NOT_MANAGED_RECHECK", "CERTPOLICY_ERROR_RETRY"}


def test_a_setting_applies_where_it_is_read(monkeypatch) -> None:
    monkeypatch.setenv("CERTPOLICY_NOT_MANAGED_RECHECK", "1.5")
    assert NOT_MANAGED_RECHECK.delta() == dt.timedelta(seconds=1.5)
    monkeypatch.setenv("CERTPOLICY_NOT_MANAGED_RECHECK", "")
    assert NOT_MANAGED_RECHECK.seconds() == 30.0


@pytest.mark.parametrize("raw", ["abc", "0", "-2", "nan", "inf", "90000"])
def test_an_unusable_value_names_the_variable(monkeypatch, raw: str) -> None:
    monkeypatch.setenv("CERTPOLICY_PROBE_RETRY", raw)
    with pytest.raises(ValueError, match=f"CERTPOLICY_PROBE_RETRY={raw!r}"):
        PROBE_RETRY.seconds()


def test_certpolicy_run_refuses_an_unusable_interval_before_it_connects() -> None:
    env = dict(os.environ, CERTPOLICY_NOT_MANAGED_RECHECK="30s", CERTPOLICY_METRICS_PORT="-1",
               KUBECONFIG="/nonexistent")
    proc = subprocess.run([sys.executable, "-m", "certpolicy.cli", "run"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "CERTPOLICY_NOT_MANAGED_RECHECK='30s': not a number of seconds" in proc.stderr


def test_cert_manager_namespace_is_a_run_flag_whose_default_is_the_environment(monkeypatch) -> None:
    """``--cert-manager-namespace`` reaches what the handlers read (environment.cert_manager_namespace);
    CERTPOLICY_CERT_MANAGER_NAMESPACE is only its default."""
    import argparse

    from certpolicy.environment import cert_manager_namespace
    from certpolicy.runcmd import configure_parser, export_settings

    def parsed(*argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        configure_parser(parser)
        return parser.parse_args(list(argv))

    monkeypatch.delenv("CERTPOLICY_CERT_MANAGER_NAMESPACE", raising=False)
    assert parsed().cert_manager_namespace == "cert-manager"
    monkeypatch.setenv("CERTPOLICY_CERT_MANAGER_NAMESPACE", "from-env")
    assert parsed().cert_manager_namespace == "from-env"
    args = parsed("--cert-manager-namespace", "cm-system")
    export_settings(args)
    assert cert_manager_namespace() == "cm-system"
