"""The ``Enforced`` condition of a policy with ``spec.enforcement`` Warn or Deny.

The verdict is the webhook's (``webhook/enforcement.py``: judged after every upkeep of the
leader from the configuration as the API server holds it); the pass only puts it on the policy,
so that a policy that asks for enforcement says whether it is in force, and an ``Audit`` policy
carries no such condition. The webhook wakes the policies whose verdict changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from certpolicy.conditions import ENFORCED, Condition, find
from certpolicy.handlers.context import PassContext
from certpolicy.policy.admission import Enforcement, enforcement_from_spec
from certpolicy.policy.spec import PolicySpecError

#: The webhook's verdicts by policy name (``Webhook.enforced``); None: this process runs no webhook.
Verdicts = Callable[[str], Condition | None] | None
#: Not a failure: a new enforcing policy (or a new leader) waits for the webhook's first verdict.
STARTING = "WebhookStarting"


def enforced_condition(spec: Mapping[str, Any], verdicts: Verdicts, policy: str) -> Condition | None:
    """The policy's ``Enforced`` condition; None for ``Audit`` (no enforcement asked for)."""
    try:
        enforcement = enforcement_from_spec(spec)
    except PolicySpecError as e:
        return Condition(ENFORCED, False, "InvalidEnforcement", f"{e}: nothing enforces this policy")
    if enforcement is Enforcement.AUDIT:
        return None
    if verdicts is None:
        return Condition(ENFORCED, False, "WebhookNotRunning",
                         f"enforcement {enforcement} needs the admission webhook of `certpolicy run`, and this "
                         "operator runs without it (--webhook-port -1, or not `certpolicy run`): writes are only "
                         "reported, as under Audit")
    return verdicts(policy) or Condition(
        ENFORCED, None, STARTING,
        "the webhook has not judged this policy's registration yet (it does after each upkeep, within 10 s)")


def post_enforced_transition(ctx: PassContext, new_status: Mapping[str, Any]) -> None:
    """A Warning event when ``Enforced`` stops being True (or starts out not True), a Normal one
    when it becomes True after such a Warning: once per transition of status or reason. The
    wait for the first verdict (``WebhookStarting``) posts nothing, so a new policy that is
    registered at once has no event at all."""
    old = find(ctx.status.get("conditions"), ENFORCED) or {}
    new = find(new_status["conditions"], ENFORCED)
    if new is None or (old.get("status"), old.get("reason")) == (new["status"], new["reason"]):
        return
    key = ["Enforced", new["status"], new["reason"], str(old.get("lastTransitionTime"))]
    if new["status"] != "True":
        if new["reason"] != STARTING:
            ctx.policy_event("Warning", new["reason"], f"enforcement not in force: {new['message']}", key)
    elif old and old.get("reason") != STARTING:
        ctx.policy_event("Normal", "Enforced", new["message"], key)
