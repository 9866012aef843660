"""Shared fixtures for the pure unit tests: certificates built once per session.

RSA keys are generated once per process by ``certgen`` (see its docstring); hierarchies used by
many tests are session-scoped. Tests that need an odd certificate build it themselves — EC keys
are cheap.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from hypothesis import HealthCheck, settings

import certgen
from certpolicy.pki.secretdata import SecretMaterial, material_from_secret
from certpolicy.policy.spec import Requirements, requirements_from_spec

settings.register_profile(
    "unit",
    deadline=None,  # first calls warm caches; wall-clock deadlines only make flaky tests
    max_examples=int(os.environ.get("CERTPOLICY_FUZZ_EXAMPLES", "150")),  # raise it for a deeper run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("unit")


@pytest.fixture(scope="session")
def now() -> dt.datetime:
    return certgen.utcnow()


@pytest.fixture(scope="session")
def ec_pki(now: dt.datetime) -> certgen.PKI:
    return certgen.pki("p256", now=now)


@pytest.fixture(scope="session")
def rsa_pki(now: dt.datetime) -> certgen.PKI:
    return certgen.pki("rsa2048", now=now)


@pytest.fixture(params=["p256", "rsa2048"], ids=["ec", "rsa"])
def any_pki(request: pytest.FixtureRequest, ec_pki: certgen.PKI, rsa_pki: certgen.PKI) -> certgen.PKI:
    return ec_pki if request.param == "p256" else rsa_pki


@pytest.fixture(scope="session")
def mtls() -> Requirements:
    """The policy most tests use: mTLS leaves under *.example.com."""
    return requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"], "allowedDNSNames": ["*.example.com"]})


def material_of(leaf: certgen.Issued, intermediates: list[certgen.Issued] | tuple = (), **kw) -> SecretMaterial:
    """The SecretMaterial of a kubernetes.io/tls Secret holding ``leaf`` (+ chain, + its key)."""
    secret = certgen.tls_secret(leaf, list(intermediates), **kw)
    return material_from_secret(secret["type"], secret["data"])


@pytest.fixture(scope="session")
def material():
    return material_of


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # certpolicy.pki.load silences this at import, but pytest resets warning filters per test;
    # some public roots (certifi) carry a zero serial, which is their business, not a test failure.
    for item in items:
        item.add_marker(pytest.mark.filterwarnings("ignore:Parsed a serial number:cryptography.utils.CryptographyDeprecationWarning"))
        item.add_marker(pytest.mark.filterwarnings("ignore:PKCS#12 bundle could not be parsed as DER:UserWarning"))




def evaluate_leaf(
    leaf: certgen.Issued,
    intermediates=(),
    *,
    req: Requirements | None = None,
    bundle=None,
    now: dt.datetime | None = None,
    public_roots=None,
    **secret_kw,
):
    """Evaluate a kubernetes.io/tls Secret holding ``leaf`` (+ chain + its key)."""
    from certpolicy.pki.publicroots import PublicRoots
    from certpolicy.policy.evaluate import evaluate

    m = material_of(leaf, list(intermediates), **secret_kw)
    return evaluate(
        req if req is not None else Requirements(),
        m,
        bundle,
        now or certgen.utcnow(),
        public_roots=public_roots if public_roots is not None else PublicRoots.of([]),
    )


def of_reason(evaluation, reason: str) -> list:
    return [f for f in evaluation.findings if f.reason == reason]


def reasons_of(evaluation) -> list[str]:
    return [f.reason for f in evaluation.findings]


@pytest.fixture(scope="session")
def run():
    return evaluate_leaf


@pytest.fixture(scope="session")
def pick():
    return of_reason


@pytest.fixture(scope="session")
def reasons():
    return reasons_of
