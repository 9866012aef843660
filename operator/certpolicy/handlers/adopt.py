"""``spec.ca.adopt``: a policy re-created under a deleted one's name takes over what that one left.

A policy deleted with ``deletionPolicy: Retain`` leaves its CA Secrets (active and retired), its
bundle targets and its issued leaves, labelled ``certpolicy.io/managed-by=<name>`` and annotated
with its UID. A policy re-created under that name has a new UID, so none of it is its own
(``CANotOwned``, ``BundleTargetNotOwned``, ``SecretNotManaged``). With ``spec.ca.adopt: true`` it
takes them over in one go, before its CA stage: every object labelled with its name whose recorded
owner UID belongs to no existing CertificatePolicy (``ownership.adoptable``; a CA only in the
operator's namespace), by rewriting that UID annotation and nothing else (``managed.adopt``; the
admission policy allows exactly that). A live policy's objects are never taken: the UIDs of every
existing policy are listed first, and if they cannot all be listed nothing is adopted.

Once per policy generation per operator process (lists by label, metadata only, bounded); a
failure is ``Degraded/AdoptionFailed`` and the sweep is repeated on the next pass.
"""

from __future__ import annotations

from kubernetes.client import ApiException

from certpolicy.handlers.context import PassContext
from certpolicy.handlers.problems import Problem
from certpolicy.kube.managed import NotManaged, adopt
from certpolicy.kube.ownership import ROLE_BUNDLE, ROLE_CA, ROLE_LEAF
from certpolicy.kube.policyobjects import MAX_OBJECTS, PolicyObject, list_policy_objects, live_policies

ADOPTED = "AdoptedFromPredecessor"
ADOPTION_FAILED = "AdoptionFailed"
MAX_NAMED = 20


def adopt_wanted(ctx: PassContext) -> bool:
    return bool((ctx.spec.get("ca") or {}).get("adopt"))


def _takeable(o: PolicyObject, ctx: PassContext, live: dict[str, str]) -> bool:
    if o.uid is None or o.uid == ctx.policy.uid or o.uid in live:
        return False
    if o.role == ROLE_CA:
        return o.kind == "Secret" and o.namespace == ctx.namespace
    return o.role in (ROLE_LEAF, ROLE_BUNDLE)


def adopt_stage(ctx: PassContext) -> list[PolicyObject]:
    """Take over what a deleted predecessor of this name left; returns what was taken."""
    swept = (ctx.policy.uid, ctx.generation)  # a re-created policy of the same name sweeps again
    if not adopt_wanted(ctx) or ctx.memory.adopt_swept == swept:
        return []
    taken: list[PolicyObject] = []
    try:
        live = live_policies(ctx.raw)
        if live is None:
            ctx.out.problems.append(Problem(ADOPTION_FAILED, f"more than {MAX_OBJECTS} CertificatePolicies: it cannot "
                                                             "be proven that a recorded owner no longer exists, so "
                                                             "nothing was adopted"))
            return []
        listing = list_policy_objects(ctx.raw, ctx.name)
        for o in listing.objects:
            if _takeable(o, ctx, live) and _adopt(ctx, o, frozenset(live)):
                taken.append(o)
    except (ApiException, NotManaged) as e:
        detail = f"HTTP {e.status}" if isinstance(e, ApiException) else str(e)
        ctx.out.problems.append(Problem(ADOPTION_FAILED, f"taking over what a deleted policy {ctx.name} left failed "
                                                         f"({detail[:200]}); retried on the next pass"
                                                         + (f"; adopted so far: {_names(taken)}" if taken else "")))
        return taken
    ctx.memory.adopt_swept = swept
    if listing.capped:
        ctx.out.problems.append(Problem(ADOPTION_FAILED, f"more than {MAX_OBJECTS} {', '.join(listing.capped)} "
                                                         f"labelled for {ctx.name}: only the first were looked at"))
    if taken:
        uids = sorted({o.uid or "" for o in taken})
        message = (f"took over {len(taken)} objects left by a deleted CertificatePolicy {ctx.name} "
                   f"(uid {', '.join(uids)}; spec.ca.adopt): {_names(taken)}")
        ctx.policy_event("Normal", ADOPTED, message, [ADOPTED, *uids, str(len(taken))])
    return taken


def _adopt(ctx: PassContext, o: PolicyObject, live: frozenset[str]) -> bool:
    """A CA Secret through the pass's CA store (its one writer; the CA stage reads what it
    patched), anything else through ``managed.adopt``."""
    if o.role == ROLE_CA:
        return ctx.cas.adopt(o.name, live)
    return adopt(ctx.raw, o.kind, o.namespace, o.name, ctx.policy, live)


def _names(objects: list[PolicyObject]) -> str:
    shown = [f"{o.kind} {o.namespace + '/' if o.namespace else ''}{o.name} ({o.role})" for o in objects[:MAX_NAMED]]
    return ", ".join(shown) + (f" and {len(objects) - MAX_NAMED} more" if len(objects) > MAX_NAMED else "")
