"""Whether each enforcing policy's Warn/Deny is in force: the ``Enforced`` condition's verdicts.

The webhook's upkeep (``webhook/upkeep.py``) can fail (its CA Secret is not its own, the API
refuses the configuration's write, ...) and someone else can change the configuration. A metric
says that the upkeep fails; a policy that asks for enforcement must say itself whether its rules
are in force. So after every upkeep of the leader the configuration as the API server holds it
(read back, never what was meant to be written) is judged per enforcing policy: ``True`` only
when every entry the policy needs is there as the operator would write it and each entry's
``caBundle`` holds the CA that signed the certificate the webhook serves. The pass
(``handlers/reconcile.py``) puts the verdict on the policy as its ``Enforced`` condition; a
verdict that changes wakes the policy.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography import x509

from certpolicy.conditions import ENFORCED, Condition
from certpolicy.webhook import registration
from certpolicy.webhook.policies import EnforcedPolicy
from certpolicy.webhook.registration import holds

#: What to check when the upkeep fails; the condition's message ends with it.
FIX = ("see the operator's log (\"webhook upkeep failed\"), its RBAC for validatingwebhookconfigurations "
       f"{registration.CONFIG_NAME} and the webhook's Secrets in its namespace (docs/troubleshooting.md)")


def _without_ca_bundle(entry: Mapping[str, Any]) -> dict[str, Any]:
    client = {k: v for k, v in (entry.get("clientConfig") or {}).items() if k != "caBundle"}
    return {**entry, "clientConfig": client}


def _bundle_signed(ca_bundle: str | None, serving: x509.Certificate) -> bool:
    """Whether a CA of this ``caBundle`` (base64 PEM) signed the serving certificate."""
    try:
        cas = x509.load_pem_x509_certificates(base64.b64decode(ca_bundle or ""))
    except ValueError:
        return False
    for ca in cas:
        try:
            serving.verify_directly_issued_by(ca)
            return True
        except (ValueError, TypeError, Exception):  # noqa: BLE001 - InvalidSignature and friends: not this CA
            continue
    return False


def judge(policies: Sequence[EnforcedPolicy], wanted: Callable[[EnforcedPolicy], list[dict[str, Any]]],
          live: Mapping[str, Any] | None, serving: x509.Certificate | None, *, error: str | None,
          left_out: frozenset[str] = frozenset()) -> dict[str, Condition]:
    """Each enforcing policy's ``Enforced`` condition. ``wanted``: the entries the operator
    writes for a policy; ``live``: the configuration read back (None: it could not be read, or
    does not exist); ``serving``: the certificate the webhook serves; ``error``: why the last
    upkeep failed (None: it did not)."""
    failed = f"the webhook upkeep fails ({error}); {FIX}" if error else None
    out = {}
    for policy in policies:
        if policy.name in left_out:
            out[policy.name] = Condition(
                ENFORCED, False, "TooManyEnforcingPolicies",
                f"the webhook configuration holds at most {registration.MAX_POLICIES} enforcing policies and this "
                f"one is left out (by name): its enforcement is not in force; set another policy to Audit")
            continue
        if serving is None or live is None:
            out[policy.name] = Condition(
                ENFORCED, None, "WebhookUpkeepFailed" if failed else "WebhookStarting",
                f"whether this policy's enforcement is in force is unknown: {failed}" if failed else
                "the webhook has not registered this policy yet (its serving certificate or configuration "
                "is not in place)")
            continue
        have = {w.get("name"): w for w in live.get("webhooks") or ()}
        entries = wanted(policy)
        missing = [e["name"] for e in entries if not holds(_without_ca_bundle(have.get(e["name"]) or {}),
                                                           _without_ca_bundle(e))]
        if missing:
            reason = "WebhookUpkeepFailed" if failed else "NotRegistered"
            out[policy.name] = Condition(
                ENFORCED, False, reason,
                f"the webhook configuration {registration.CONFIG_NAME} does not hold this policy's current "
                f"entries ({', '.join(missing)}): its enforcement is not in force"
                + (f"; {failed}" if failed else "; the next upkeep (within 10 s) writes them"))
            continue
        stale = [e["name"] for e in entries if not _bundle_signed(
            (have[e["name"]].get("clientConfig") or {}).get("caBundle"), serving)]
        if stale:
            out[policy.name] = Condition(
                ENFORCED, False, "WebhookUpkeepFailed" if failed else "CABundleMismatch",
                f"the caBundle of {', '.join(stale)} does not hold the CA of the webhook's serving certificate: "
                "the API server cannot call the webhook, and with failurePolicy Ignore every write passes "
                "unjudged" + (f"; {failed}" if failed else "; the next upkeep (within 10 s) rewrites it"))
            continue
        out[policy.name] = Condition(
            ENFORCED, True, "Registered",
            f"{len(entries)} entries of the webhook configuration {registration.CONFIG_NAME} hold this policy's "
            "rules, with the CA of the webhook's serving certificate in their caBundle")
    return out
