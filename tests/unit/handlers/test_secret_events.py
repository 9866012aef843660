"""Which Secret events a pass's walk posts when a Secret changed while the walk ran.

The pass judges Secrets changed since it began between the walk's steps (its catch-up) and posts
their Warning events at once. The walk still holds the record it selected at its start: reporting
that older verdict would follow the catch-up's Warning with a false "now complies" (and the next
pass would post the Warning again). So the walk reports no record the inventory has replaced or
dropped since; the change that replaced it has woken the next pass.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from kubernetes.client import ApiClient

import certgen
from certpolicy.handlers.context import PassContext
from certpolicy.handlers.reconcile import _post_secret_events
from certpolicy.handlers.runtime import PolicyMemory
from certpolicy.inventory.interest import Reads
from certpolicy.inventory.records import SecretRecord, parse_secret_object
from certpolicy.kube.ownership import Owner
from certpolicy.kube.rawapi import RawClient
from certpolicy.policy.evaluate import Evaluator
from certpolicy.policy.report import SecretResult
from certpolicy.policy.spec import requirements_from_spec
from unstarted import inventory_with

NS, NAME, UID = "apps", "web", "uid-web"
REQUIREMENTS = requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"]})
NOW = dt.datetime.now(dt.UTC)


class Posted:
    """Stands in for the EventRecorder: what would have been posted (no API server in a unit test)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def post(self, _obj: Any, type_: str, reason: str, _message: str, _key_parts: Any, _now: Any = None) -> bool:
        self.events.append((type_, reason))
        return True


def _secret(rv: str, ekus: list[str]) -> dict:
    ca = certgen.root("Events Root")
    body = certgen.tls_secret(certgen.leaf(ca, "web.example.com", eku=ekus))
    return {"apiVersion": "v1", "kind": "Secret", "type": body["type"], "data": body["data"],
            "metadata": {"namespace": NS, "name": NAME, "uid": UID, "resourceVersion": rv}}


def _walk(held: dict | None, walked: SecretRecord, remembered: tuple[str, ...]) -> tuple[list, PolicyMemory]:
    """The walk's event posting for ``walked`` while the inventory holds ``held`` (None: deleted)
    and the policy remembers ``remembered`` as the Secret's last reported problems."""
    inv, _ = inventory_with({"p": Reads.of({}, "certpolicy-system")})
    if held is not None:
        inv.secrets.upsert(held)
    memory = PolicyMemory()
    if remembered:
        memory.signatures[UID] = remembered
    memory.store_signatures["Secret/apps/truststore"] = ("TruststoreMissingAnchor",)  # the stores' own
    recorder = Posted()
    ctx = PassContext(raw=RawClient(ApiClient()), inventory=inv, recorder=recorder,  # type: ignore[arg-type]
                      policy=Owner(name="p", uid="uid-p"), generation=1, spec={}, status={}, annotations={},
                      requirements=REQUIREMENTS, memory=memory, now=NOW, namespace="certpolicy-system")
    result = SecretResult(NS, NAME, Evaluator().evaluate(REQUIREMENTS, walked.material, None, NOW))
    _post_secret_events(ctx, [result], {(NS, NAME): walked})
    return recorder.events, memory


def test_the_record_the_inventory_still_holds_is_reported():
    """The control: a Secret known violating that now complies gets its Normal event."""
    compliant = _secret("1", ["serverAuth", "clientAuth"])
    events, memory = _walk(compliant, parse_secret_object(compliant), ("MissingClientAuth",))
    assert events == [("Normal", "Compliant")]
    # a compliant Secret is not remembered (100,000 of them would be ~10 MB of nothing); a
    # trust store's problems, remembered beside them, are not swept by the Secrets' walk
    assert memory.signatures == {}
    assert memory.store_signatures == {"Secret/apps/truststore": ("TruststoreMissingAnchor",)}


def test_a_violating_secret_is_remembered_and_posted_once():
    violating = _secret("1", ["serverAuth"])
    events, memory = _walk(violating, parse_secret_object(violating), ())
    assert events == [("Warning", "MissingClientAuth")]
    assert memory.signatures[UID] == ("MissingClientAuth",)


def test_a_record_replaced_since_the_walk_selected_it_is_not_reported():
    """The catch-up posted a Warning for resourceVersion 2; the walk holds version 1, which
    complies: no false "now complies", and the Warning's signature stays remembered, so the next
    pass (judging version 2) posts nothing twice."""
    old, new = _secret("1", ["serverAuth", "clientAuth"]), _secret("2", ["serverAuth"])
    events, memory = _walk(new, parse_secret_object(old), ("MissingClientAuth",))
    assert events == []
    assert memory.signatures[UID] == ("MissingClientAuth",)


def test_a_record_deleted_since_the_walk_selected_it_is_not_reported():
    old = _secret("1", ["serverAuth"])
    events, memory = _walk(None, parse_secret_object(old), ())
    assert events == []
    assert UID not in memory.signatures
