"""What the rotation machine is told: the policy's rotation settings and what the driver observed.

Everything here is a plain value built by the driver from the spec and from fresh reads of the
cluster. The machine never trusts its own memory of what it did: a crash may have happened after
any action and before the status write, so progress is re-derived from these observations on
every call (at-least-once execution).

Fingerprints are opaque strings (``sha256:<hex>`` in the operator, anything in tests), which is
what lets the invariant be simulated without real cryptography.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from certpolicy.policy.durations import parse_duration
from certpolicy.policy.spec import PolicySpecError

DEFAULT_PROPAGATION_DELAY = dt.timedelta(minutes=2)
DEFAULT_LEAF_TIMEOUT = dt.timedelta(hours=24)
DEFAULT_ROTATE_BEFORE = dt.timedelta(hours=2160)
DEFAULT_PER_MINUTE = 60
#: How soon refused probes are run again (the operator sets it from CERTPOLICY_PROBE_RETRY).
DEFAULT_PROBE_RETRY = dt.timedelta(seconds=30)


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Probe:
    """One ``spec.rotation.probes`` entry: an mTLS endpoint that must accept the canary."""

    host: str
    port: int
    server_name: str | None = None
    timeout: dt.timedelta = dt.timedelta(seconds=5)

    @property
    def id(self) -> str:
        """Stable key of the probe in status and in :class:`ProbeResult` (``host:port[/sni]``)."""
        base = f"{self.host}:{self.port}"
        return f"{base}/{self.server_name}" if self.server_name and self.server_name != self.host else base


@dataclass(frozen=True)
class RotationSettings:
    """The parts of a CertificatePolicy spec the rotation depends on, durations already parsed.

    ``ca_secret_name`` is ``spec.ca.secretName``: the Secret that always holds the *issuing* CA.
    ``supplied_ca_secret_name`` is ``spec.rotation.newCASecretName``.
    """

    ca_secret_name: str
    rotate_before: dt.timedelta = DEFAULT_ROTATE_BEFORE
    propagation_delay: dt.timedelta = DEFAULT_PROPAGATION_DELAY
    leaf_timeout: dt.timedelta = DEFAULT_LEAF_TIMEOUT
    probes: tuple[Probe, ...] = ()
    paused: bool = False
    abort: bool = False
    supplied_ca_secret_name: str | None = None
    reissue_per_minute: int = DEFAULT_PER_MINUTE
    #: ``spec.rotation.leafPropagationDelay``; None means "the same as propagation_delay".
    leaf_propagation_delay: dt.timedelta | None = None
    #: ``spec.rotation.restartWorkloads``: rollout-restart the owners of Pods that load a leaf or
    #: a bundle only at start, instead of only naming them.
    restart_workloads: bool = False
    #: Not from the spec: the operator's ``CERTPOLICY_PROBE_RETRY`` (``environment.PROBE_RETRY``);
    #: a field, so that the machine stays pure and a test can set it.
    probe_retry: dt.timedelta = DEFAULT_PROBE_RETRY

    @property
    def leaf_delay(self) -> dt.timedelta:
        """How long after the last leaf moved to the new CA workloads are assumed to hold it."""
        return self.propagation_delay if self.leaf_propagation_delay is None else self.leaf_propagation_delay

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> RotationSettings:
        """Settings from a CertificatePolicy ``spec`` (CRD defaults applied where a field is absent).

        Raises PolicySpecError listing every unusable field; a policy without ``spec.ca`` has
        nothing to rotate.
        """
        problems: list[str] = []
        ca = spec.get("ca") or {}
        rotation = spec.get("rotation") or {}
        limits = spec.get("issuanceLimits") or {}

        def duration(where: Mapping[str, Any], key: str, default: str, path: str) -> dt.timedelta:
            try:
                return parse_duration(str(where.get(key) or default))
            except ValueError as e:
                problems.append(f"{path}: {e}")
                return parse_duration(default)

        if not ca.get("secretName"):
            problems.append("spec.ca.secretName: a rotation needs the policy's CA Secret")
        probes = []
        for i, p in enumerate(rotation.get("probes") or ()):
            try:
                probes.append(Probe(str(p["host"]), int(p["port"]), p.get("serverName") or None,
                                    duration(p, "timeout", "5s", f"spec.rotation.probes[{i}].timeout")))
            except (KeyError, TypeError, ValueError):
                problems.append(f"spec.rotation.probes[{i}]: needs host and port")
        settings = dict(
            ca_secret_name=str(ca.get("secretName") or "-"),
            rotate_before=duration(ca, "rotateBefore", "2160h", "spec.ca.rotateBefore"),
            propagation_delay=duration(rotation, "propagationDelay", "2m", "spec.rotation.propagationDelay"),
            leaf_timeout=duration(rotation, "leafTimeout", "24h", "spec.rotation.leafTimeout"),
            probes=tuple(probes),
            paused=bool(rotation.get("paused", False)),
            abort=bool(rotation.get("abort", False)),
            supplied_ca_secret_name=rotation.get("newCASecretName") or None,
            reissue_per_minute=int(limits.get("perMinute") or DEFAULT_PER_MINUTE),
            leaf_propagation_delay=(duration(rotation, "leafPropagationDelay", "0s", "spec.rotation.leafPropagationDelay")
                                    if rotation.get("leafPropagationDelay") else None),
            restart_workloads=bool(rotation.get("restartWorkloads", False)),
        )
        if problems:
            raise PolicySpecError(problems)
        try:
            # settings maps each field to its parsed value: dict[str, object] to mypy, one field's type each.
            return cls(**settings)  # type: ignore[arg-type]
        except ValueError as e:
            raise PolicySpecError([str(e)]) from None

    def __post_init__(self) -> None:
        if not self.ca_secret_name:
            raise ValueError("ca_secret_name must not be empty")
        if self.reissue_per_minute < 1:
            raise ValueError("reissue_per_minute must be at least 1")
        ids = [p.id for p in self.probes]
        if len(ids) != len(set(ids)):
            raise ValueError("two probes have the same host, port and server name")


@dataclass(frozen=True)
class CAInfo:
    """A CA key pair found in a Secret (certificate and key present and matching)."""

    fingerprint: str
    not_after: dt.datetime | None = None


@dataclass(frozen=True)
class Leaf:
    """One in-scope leaf Secret and the policy CA its chain leads to.

    ``issuer`` is the fingerprint of the root the leaf's chain reaches (None when it reaches none
    of the policy's CAs). ``managed`` is True for leaves the operator has re-issued: from
    ``spec.issuance`` (it issues them itself), or the Secrets of the cert-manager Certificates of
    ``spec.ca.certManager``'s Issuer (it asks cert-manager to). Others are named in events until
    someone replaces them. ``ready`` is False for such a Certificate that is not Ready (or still
    issuing): step 3 and step 4 wait for it even when its Secret chains to the new CA already.
    """

    id: str  # "namespace/name"
    issuer: str | None
    managed: bool = False
    ready: bool = True


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one canary handshake the driver ran because of a :class:`RunProbes` action.

    ``served_ca`` is the fingerprint of the CA (among :attr:`RunProbes.verify_served`) that the
    endpoint's own certificate chains to, None when it chains to none of them or was not checked.
    ``served_other`` is True when the served chain was read and leads to none of them: a partner
    whose server certificate comes from a public CA or its own (only the client certificates come
    from the policy's CA). Such an endpoint does not depend on the old CA, so it never holds step 4;
    an endpoint whose chain could not be read has both unset and holds it.
    """

    probe: str  # Probe.id
    ca_fingerprint: str  # the CA that signed the canary client certificate
    accepted: bool
    at: dt.datetime
    message: str = ""
    served_ca: str | None = None
    served_other: bool = False

    def __post_init__(self) -> None:
        if self.served_other and self.served_ca is not None:
            raise ValueError("a served chain leads to one of the rotation's CAs or to another, not both")


@dataclass(frozen=True)
class PodUse:
    """A Pod that reads some of the rotation's objects only when it starts.

    ``leaves`` are leaf ids (``namespace/name``) it takes through ``subPath``, ``env`` or
    ``envFrom`` (never updated in a running container); ``bundles`` are bundle target ids it
    loads only at start (the same ways, or any way when the Pod carries the
    ``certpolicy.io/trust-loaded-at-start`` annotation, e.g. a Java truststore). ``started_at``
    is when its containers last started (None: not started yet, so it will load what is current).
    ``owner`` names what a rollout restart acts on (``Deployment/ns/name``), None for a bare Pod.
    """

    id: str  # "namespace/name"
    started_at: dt.datetime | None
    owner: str | None = None
    leaves: frozenset[str] = frozenset()
    bundles: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "leaves", frozenset(self.leaves))
        object.__setattr__(self, "bundles", frozenset(self.bundles))

    def started_before(self, instant: dt.datetime | None) -> bool:
        return instant is not None and self.started_at is not None and self.started_at < instant


@dataclass(frozen=True)
class Observation:
    """A fresh look at the cluster, taken just before :func:`~certpolicy.rotation.machine.decide`.

    * ``ca_secrets`` — for every Secret name in
      :func:`~certpolicy.rotation.machine.secrets_to_observe`: the CA it holds, or None when the
      Secret is absent or does not hold a usable CA (both: "there is no CA there").
    * ``targets`` — every bundle target (``namespace/kind/name/key``) with the fingerprints read
      back from it (PEM and, when configured, the PKCS#12 form: a fingerprint counts only when
      every format of the target holds it); None when the target could not be read.
    * ``leaves`` — every in-scope leaf.
    * ``probe_results`` — results of probes the driver ran since the last decision.
    * ``rotate_request`` — the value of the ``certpolicy.io/rotate`` annotation.
    * ``force`` — the value of the ``certpolicy.io/rotation-force`` annotation.
    * ``pods`` — Pods that load a leaf or bundle target of this policy only at start.
    * ``primaries`` — for each target with a PKCS#12 form: the CA under the bare alias.
    * ``lost_ca`` — the CA ``status.ca.history`` records as active when the Secret
      ``spec.ca.secretName`` no longer exists: its certificate is known (bundles keep trusting
      it), its key is gone, so only a rotation to a new CA lets the policy issue again.
    """

    ca_secrets: Mapping[str, CAInfo | None] = field(default_factory=dict)
    targets: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    leaves: tuple[Leaf, ...] = ()
    probe_results: tuple[ProbeResult, ...] = ()
    rotate_request: str | None = None
    force: str | None = None
    pods: tuple[PodUse, ...] = ()
    primaries: Mapping[str, str | None] = field(default_factory=dict)
    lost_ca: CAInfo | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "ca_secrets", _frozen(self.ca_secrets))
        object.__setattr__(
            self,
            "targets",
            _frozen({k: (None if v is None else frozenset(v)) for k, v in self.targets.items()}),
        )
        object.__setattr__(self, "leaves", tuple(self.leaves))
        object.__setattr__(self, "probe_results", tuple(self.probe_results))
        object.__setattr__(self, "pods", tuple(self.pods))
        object.__setattr__(self, "primaries", _frozen(self.primaries))

    def ca(self, secret_name: str | None) -> CAInfo | None:
        return self.ca_secrets.get(secret_name) if secret_name else None
