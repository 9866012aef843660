"""The typed definition of spec.requirements (``Requirements``' knobs) against the committed CRD,
its chart copy and ``certpolicy check``'s flags: a knob is declared once, and these fail when a
file derived from it was edited by hand or not regenerated (``scripts/gen_crd.py``)."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from certpolicy.checkcmd import _requirements, configure_parser
from certpolicy.policy.knobs import declared
from certpolicy.policy.spec import FIELDS, Requirements, requirements_from_spec, requirements_schema_properties

REPO = Path(__file__).resolve().parents[3]
CRDS = [REPO / "crds" / "certificatepolicies.certpolicy.io.yaml",
        REPO / "charts" / "certpolicy-operator" / "files" / "crd.yaml"]


def _requirements_schema(path: Path) -> dict:
    crd = yaml.safe_load(path.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec["properties"]["requirements"]["properties"]


@pytest.mark.parametrize("path", CRDS, ids=["crds", "chart"])
def test_the_crd_says_what_the_typed_definition_says(path):
    crd = _requirements_schema(path)
    for name, schema in requirements_schema_properties().items():
        assert crd.get(name) == schema, f"{path}: spec.requirements.{name} differs from Requirements; run scripts/gen_crd.py"
    assert sorted(crd) == sorted(FIELDS), "a spec.requirements field the parser does not know, or the reverse"


def test_the_chart_ships_the_same_crd():
    assert CRDS[1].read_bytes() == CRDS[0].read_bytes()


def test_the_generated_block_is_current():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_crd.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_schema_defaults_are_the_parsers_defaults():
    """A policy that omits a knob gets the CRD's default from the API server and the field's
    default from ``certpolicy check``: they must mean the same, except where said why."""
    differ = {"extendedKeyUsages"}  # the API server defaults a policy to serverAuth; check without a policy requires none
    empty = Requirements()
    for d in declared(Requirements):
        if "default" in d.knob.schema and d.knob.key not in differ:
            spec: dict = {}
            *outer, name = d.knob.path
            holder = spec
            for part in outer:
                holder = holder.setdefault(part, {})
            holder[name] = d.knob.schema["default"]
            assert getattr(requirements_from_spec(spec), d.attribute) == getattr(empty, d.attribute), d.knob.key


def test_every_flag_replaces_its_knob():
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    options = {o for a in parser._actions for o in a.option_strings}  # noqa: SLF001 - argparse has no public list
    flags = [d for d in declared(Requirements) if d.knob.flag]
    assert flags, "no knob declares a flag"
    for d in flags:
        assert d.knob.flag.name in options, d.knob.flag.name


H = dt.timedelta(hours=1)
#: Each flag once, with what it must put in the requirements (over a policy whose expiry leaves room).
FLAG_CASES = {
    "--require-eku": (["clientAuth,serverAuth"], "extended_key_usages", ("clientAuth", "serverAuth")),
    "--allow-dns": (["*.example.com"], "allowed_dns_names", ("*.example.com",)),
    "--require-dns": (["a.example.com"], "required_dns_names", ("a.example.com",)),
    "--allow-ip-range": (["10.0.0.0/8,fd00::/8"], "allowed_ip_ranges",
                         (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))),
    "--require-ip": (["10.0.0.1"], "required_ip_addresses", (ipaddress.ip_address("10.0.0.1"),)),
    "--require-san": ([], "require_san", True),
    "--no-require-san": ([], "require_san", False),
    "--warn-before": (["2000h"], "warning_before", 2000 * H),
    "--critical-before": (["1h30m"], "critical_before", dt.timedelta(minutes=90)),
    "--min-rsa-bits": (["4096"], "minimum_rsa_bits", 4096),
    "--allow-curve": (["P-384"], "allowed_ec_curves", ("P-384",)),
    "--allow-hash": (["sha384,sha512"], "allowed_signature_hashes", ("sha384", "sha512")),
    "--require-key": ([], "require_private_key", True),
    "--no-require-key": ([], "require_private_key", False),
}


def test_every_flag_has_a_case_below():
    declared_flags = {d.knob.flag.name for d in declared(Requirements) if d.knob.flag}
    assert declared_flags == {f for f in FLAG_CASES if not f.startswith("--no-")}


@pytest.mark.parametrize("flag", FLAG_CASES)
def test_a_flag_replaces_the_policys_value(flag):
    values, attribute, expected = FLAG_CASES[flag]
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    args = parser.parse_args(["cert.pem", flag, *values])
    requirements: dict = {"expiry": {"warningBefore": "4000h", "criticalBefore": "1h"}}
    if isinstance(expected, bool):  # the policy says the opposite, so the flag must replace it
        requirements[next(d.knob.key for d in declared(Requirements) if d.attribute == attribute)] = not expected
    policy = {"spec": {"requirements": requirements}}
    assert getattr(_requirements(policy, args), attribute) == expected
