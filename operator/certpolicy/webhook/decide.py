"""One admission decision, from the warm inventory and the policy index: never a LIST, never a GET.

The API server calls one webhook entry per enforcing policy (``/validate/secret/<policy>`` and
``/validate/bundle/<policy>``), so a request is judged against that one policy. Parsing the new
object reuses the engine's loaders (bounded: ``pki.secretdata`` reads at most MAX_INPUT_BYTES per
value); the stored object is the inventory's already-parsed record when its resourceVersion is the
one the request replaces.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from certpolicy.inventory.inventory import Inventory
from certpolicy.inventory.records import RENEWAL_ACCEPTED_ANNOTATION, parse_bundle_object, parse_labelled_secret
from certpolicy.inventory.selection import select
from certpolicy.inventory.wakes import TLS_TYPE
from certpolicy.pki.secretdata import SecretMaterial, material_from_secret
from certpolicy.policy.admission import ALLOW, Verdict, judge_bundle, judge_secret, orphans
from certpolicy.policy.certmanager import owner_of
from certpolicy.policy.evaluate import Evaluation, Evaluator, TrustBundle
from certpolicy.policy.spec import Requirements
from certpolicy.webhook.policies import EnforcedPolicy, PolicyIndex
from certpolicy.webhook.review import Request

log = logging.getLogger(__name__)
WRITES = ("CREATE", "UPDATE")


class Decider:
    def __init__(self, index: PolicyIndex, inventory: Inventory, evaluator: Evaluator | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.index, self.inventory, self.clock = index, inventory, clock
        self.evaluator = evaluator or Evaluator()

    def _evaluate(self, requirements: Requirements) -> Callable[[SecretMaterial, TrustBundle | None], Evaluation]:
        now = self.clock()
        return lambda material, bundle: self.evaluator.evaluate(requirements, material, bundle, now)

    def trust_bundle(self, policy: EnforcedPolicy) -> TrustBundle | None:
        """What the policy's chains must lead to, as its pass has it: requirements.trustBundle (held
        by the inventory while the policy enforces), else its own CAs, else none (ca.crt)."""
        src = policy.bundle_source
        if src is not None:
            record, _read = self.inventory.bundle(src.kind, src.namespace, src.name)
            certs = record.certs(src.key) if record is not None else ()
            return certs or None
        return policy.own_cas or None

    # ---- Secrets --------------------------------------------------------------------------------
    def secret(self, policy_name: str, request: Request) -> Verdict:
        policy = self.index.get(policy_name)
        if policy is None or not policy.enforcing or request.operation not in WRITES or request.object is None:
            return ALLOW
        assert policy.requirements is not None
        key = (request.namespace, request.name)
        obj = request.object
        if obj.get("type") != TLS_TYPE and key not in policy.names and parse_labelled_secret(obj) is None:
            return ALLOW  # not a certificate Secret: the policy does not select it
        if policy.mounted_only and key not in self.inventory.mounts("Secret"):
            return ALLOW
        new = material_from_secret(obj.get("type") or "Opaque", obj.get("data") or {})
        old = self._stored(request) if request.operation == "UPDATE" else None
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        return judge_secret(policy.name, policy.enforcement, f"Secret {request.namespace}/{request.name}", old, new,
                            self.trust_bundle(policy), self._evaluate(policy.requirements),
                            ignore=policy.renewal_ignore, own_anchors=policy.own_anchors,
                            accepted=annotations.get(RENEWAL_ACCEPTED_ANNOTATION),
                            owner=owner_of(request.namespace, annotations))

    def _stored(self, request: Request) -> SecretMaterial | None:
        old = request.old_object
        if old is None:
            return None
        rv = (old.get("metadata") or {}).get("resourceVersion")
        rec = self.inventory.secret((request.namespace, request.name))
        if rec is not None and rv and rec.resource_version == rv:
            return rec.material  # parsed by the watch already
        return material_from_secret(old.get("type") or "Opaque", old.get("data") or {})

    # ---- trust bundles (the bundle guard) ---------------------------------------------------------
    def bundle(self, policy_name: str, request: Request) -> Verdict:
        policy = self.index.get(policy_name)
        if (policy is None or not policy.enforcing or request.operation != "UPDATE" or request.object is None
                or request.old_object is None):
            return ALLOW
        assert policy.requirements is not None
        keys = self._bundle_keys(policy, request)
        if not keys:
            return ALLOW
        old = parse_bundle_object(request.old_object, kind=request.kind)
        new = parse_bundle_object(request.object, kind=request.kind)
        leaves = [(r.namespace, r.name, r.material) for r in select(self.inventory, policy.selector).secrets]
        evaluate = self._evaluate(policy.requirements)
        for key in keys:
            found = orphans(leaves, old.certs(key), new.certs(key), evaluate)
            if found:
                return judge_bundle(policy.name, policy.enforcement, request.where, found)
        return ALLOW

    @staticmethod
    def _bundle_keys(policy: EnforcedPolicy, request: Request) -> list[str]:
        """The data keys of this object the policy reads (its trust bundle) or writes (a target)."""
        keys = []
        src = policy.bundle_source
        if src is not None and (src.kind, src.namespace, src.name) == (request.kind, request.namespace, request.name):
            keys.append(src.key)
        keys += [t.key for t in policy.targets if (t.kind, t.name) == (request.kind, request.name)]
        return list(dict.fromkeys(keys))
