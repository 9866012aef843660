"""What the rotation machine asks the driver to do.

Every action is idempotent and carries its own preconditions, because the driver runs them
at-least-once: after a crash the same decision (or an older one) may be made again and its actions
repeated. The driver performs the actions of one decision in order and stops at the first failure;
whatever happened is observed again before the next decision.

No action carries key material: CAs are named by fingerprint plus the Secret that holds them, and
the driver checks that the Secret still holds that fingerprint before using it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from certpolicy.rotation.model import Probe


@dataclass(frozen=True)
class CARef:
    """A CA by fingerprint and the Secret (operator namespace) whose ``tls.crt`` holds it.

    The driver must refuse to act when the Secret holds another certificate.
    """

    fingerprint: str
    secret_name: str


@dataclass(frozen=True)
class GenerateNewCA:
    """Create ``secret_name`` with a freshly generated CA — only if the Secret does not exist.

    Create-only (HTTP 409 means "already there: keep it"): a crash between generating and
    recording the fingerprint must find the first CA, never make a second one. The name is
    derived from the rotation id, so a repeated decision names the same Secret.
    """

    secret_name: str
    rotation_id: str
    kind: Literal["GenerateNewCA"] = "GenerateNewCA"


@dataclass(frozen=True)
class UpdateBundles:
    """Merge into each listed target: add ``add``, remove the fingerprints in ``remove``.

    Per target: read, :func:`certpolicy.pki.bundle.merge`, write only when ``changed`` (and the
    PKCS#12 form only when :func:`certpolicy.pki.truststore.truststore_matches` is False). The
    machine verifies by reading every target back on the next observation, never from the write.
    """

    targets: tuple[str, ...]
    add: tuple[CARef, ...]
    remove: tuple[str, ...]
    #: The CA a PKCS#12 form names with its bare alias: always the *active* (issuing) CA, so the
    #: incoming CA keeps its own alias until it is promoted at step 3.
    primary: str | None = None
    kind: Literal["UpdateBundles"] = "UpdateBundles"


@dataclass(frozen=True)
class RunProbes:
    """Handshake with each probe presenting a canary client certificate signed by ``ca``.

    The canary is short-lived (minutes), carries clientAuth, and is never stored. Report one
    :class:`~certpolicy.rotation.model.ProbeResult` per probe in the next observation.
    """

    probes: tuple[Probe, ...]
    ca: CARef
    #: When set (step 4), also report which of these CAs the endpoint's *served* certificate
    #: chains to (``ProbeResult.served_ca``).
    verify_served: tuple[CARef, ...] = ()
    kind: Literal["RunProbes"] = "RunProbes"


@dataclass(frozen=True)
class PromoteNewCA:
    """Make ``ca_secret_name`` (``spec.ca.secretName``) hold the new CA, so every later issuance,
    including ordinary renewals, comes from it.

    Idempotent: nothing to do when ``ca_secret_name`` already holds ``new``. Otherwise first copy
    the Secret's current content (it must be ``old_fingerprint``) to ``retired_secret_name``
    (create-only), then write the new CA's ``tls.crt``/``tls.key`` into ``ca_secret_name``. The
    retired Secret keeps the old CA's certificate available for bundles until step 5 ends.
    """

    ca_secret_name: str
    new: CARef
    old_fingerprint: str
    retired_secret_name: str
    kind: Literal["PromoteNewCA"] = "PromoteNewCA"


@dataclass(frozen=True)
class ReissueLeaf:
    """Re-issue the managed leaf ``leaf`` (``namespace/name``) from ``ca``, verifying the new
    certificate (EKU, SANs, chain to ``ca``) before writing it."""

    leaf: str
    ca: CARef
    kind: Literal["ReissueLeaf"] = "ReissueLeaf"


@dataclass(frozen=True)
class DeleteCASecret:
    """Delete a CA Secret the operator generated, only if it still holds ``fingerprint``.

    Used for the discarded new CA of an aborted rotation and for the spare copy of the new CA
    once it lives in ``spec.ca.secretName``. Never emitted for a user-supplied Secret.
    """

    secret_name: str
    fingerprint: str
    kind: Literal["DeleteCASecret"] = "DeleteCASecret"


@dataclass(frozen=True)
class RestartWorkload:
    """Rollout-restart ``owner`` (``Deployment|StatefulSet|DaemonSet/namespace/name``) the way
    ``kubectl rollout restart`` does: set the pod template annotation
    ``kubectl.kubernetes.io/restartedAt`` to now. Only asked for with
    ``spec.rotation.restartWorkloads``.

    Idempotent: the driver records ``certpolicy.io/restarted-for: <policy>/<rotation_id>:<step>``
    in the same patch and does nothing when it is already there, or when ``restartedAt`` already
    says a restart happened after ``not_before`` (the instant the Pods must have started after),
    so a decision repeated after a crash or a lost status write restarts nobody twice. ``step`` is 2 (Pods read a bundle only at start) or 4
    (they read a leaf only at start): a Pod that reads both needs one restart after each.
    """

    owner: str
    rotation_id: str
    step: int
    not_before: dt.datetime
    kind: Literal["RestartWorkload"] = "RestartWorkload"


@dataclass(frozen=True)
class EmitEvent:
    """A Kubernetes Event on the CertificatePolicy. Messages name CAs by short fingerprint only."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    kind: Literal["EmitEvent"] = "EmitEvent"


Action = (GenerateNewCA | UpdateBundles | RunProbes | PromoteNewCA | ReissueLeaf | DeleteCASecret | RestartWorkload
          | EmitEvent)
