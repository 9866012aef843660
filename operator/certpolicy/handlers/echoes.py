"""Which changes of a CertificatePolicy wake its loop: every one but the echo of its own status write.

kopf hears every write to a policy (``handlers/policy.py``, ``policy_changed``), the operator's
own included. A pass that wrote the status used to be woken again by that write, so every Secret
change cost two passes, each evaluating everything the policy selects. A pass therefore leaves
what it read and what it wrote (:class:`LastPass`); a change whose object is that one again (the
same spec, metadata and everything else, with the status the pass decided on) is the echo of the
pass's own write and wakes nothing. Anything else wakes the loop: a spec change (a new
generation), an annotation (``certpolicy.io/rotate`` and ``certpolicy.io/rotation-force``, the
requests the rotation stage honours), labels, kopf's finalizer, a deletion, and a status that is not the one the pass wrote
(a failure reported outside the pass, ``reconcile.report_problem``, or someone else's edit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from certpolicy.kube.status import same_status

#: Metadata every write changes, the status subresource's too: not part of what a pass read.
WRITE_METADATA = ("resourceVersion", "managedFields")


def essence(policy: Mapping[str, Any]) -> dict[str, Any]:
    """The policy without its status and without the metadata every write changes."""
    out = {k: v for k, v in policy.items() if k != "status"}
    metadata = policy.get("metadata") or {}
    out["metadata"] = {k: v for k, v in metadata.items() if k not in WRITE_METADATA}
    return out


@dataclass(frozen=True)
class LastPass:
    """The policy as the last pass read it (:func:`essence`) and its whole status as that pass
    leaves it: the status read, with the fields it decided on in place (set before the status is
    written, so the write's echo always finds it)."""

    essence: dict[str, Any]
    status: Mapping[str, Any]

    @classmethod
    def read(cls, policy: Mapping[str, Any]) -> LastPass:
        return cls(essence(policy), policy.get("status") or {})

    def deciding(self, fields: Mapping[str, Any]) -> LastPass:
        """After the pass's status write of these top-level fields (each replaced as a whole)."""
        return LastPass(self.essence, {**self.status, **fields})

    def echoed_by(self, policy: Mapping[str, Any]) -> bool:
        """Whether ``policy`` (the object a watch event carries) is this pass's own view again:
        its essence unchanged and its whole status as the pass left it (evaluation timestamps aside)."""
        return essence(policy) == self.essence and same_status(policy.get("status"), self.status)
