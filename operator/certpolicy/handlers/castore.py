"""The one home of a policy's CA key pairs: read once per pass, written only here.

A CA's life — created when the policy has none, handed over or adopted, a rotation's new CA
generated (or supplied), promoted into the policy's CA Secret, the old one kept until step 5 and
then deleted, expired retired keys swept, everything deleted with ``deletionPolicy: Delete`` — is
spread over several stages (:mod:`~certpolicy.handlers.ca`, :mod:`~certpolicy.handlers.adopt`,
:mod:`~certpolicy.handlers.rotation`, :mod:`~certpolicy.handlers.deletion`). They all go through
the :class:`CAStore` the pass context owns (``ctx.cas``), which

* reads each CA Secret at most once per pass (a GET the first time a stage asks, then the copy;
  a write replaces the copy with what the API server stored, so a stage later in the pass sees
  the pass's own writes without reading again; a write that loses a race, 409, drops the copy so
  the next ask reads what won);
* is the only writer of CA Secrets, through :mod:`certpolicy.kube.managed` (create-only
  creations, updates and deletes at the resourceVersion read, so nothing is overwritten unseen).

A store is per pass (one :class:`PassContext`), never shared between passes: the next pass reads
afresh, so the rotation machine still decides on what the cluster holds now.

**The seam.** Stages speak to the :class:`CAStore` protocol, by Secret *name*; what a name
resolves to is the implementation's business. :class:`PolicyCASecrets` keeps every CA in the
operator's namespace, created for the policy (or handed over by label). A CA that lives in
someone else's Secret (a cert-manager CA Issuer's ``spec.ca.secretName``, written only with the
policy's explicit opt-in) is one more implementation: it resolves the policy's active-CA name to
that Secret, with its own ownership rule, and keeps the rotation's next and retired copies where
:class:`PolicyCASecrets` keeps them; no stage changes.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes.client import ApiException

from certpolicy.environment import cert_manager_namespace
from certpolicy.handlers.problems import Problem
from certpolicy.kube.certmanager import IssuerRef, read_issuer, write_issuer_ca_secret
from certpolicy.kube.managed import (
    NotManaged,
    adopt_object,
    create_managed_secret,
    delete_managed_secret,
    read,
    update_managed_secret,
)
from certpolicy.kube.ownership import (
    MANAGED_BY,
    ROLE_CA,
    ROLE_LABEL,
    Owner,
    adopt_hint,
    created_for,
    owner_description,
    predecessor_uid,
)
from certpolicy.kube.rawapi import RawClient
from certpolicy.pki.inspect import summarize
from certpolicy.pki.issue import KeyPair, load_key_pair
from certpolicy.policy.certmanager import CERTIFICATE_NAME_ANNOTATION

#: Annotation on a rotation's generated CA Secret: the rotation it was made for.
ROTATION_ANNOTATION = "certpolicy.io/rotation"
#: CA Secrets listed per page, and pages at most, when all of a policy's are needed (the expired-key
#: sweep, ``deletionPolicy: Delete``). A policy has its active CA, a rotation's next one and at
#: most ``ca.MAX_RETIRED_HISTORY`` retired ones; more than this is reported, never looped over.
LIST_PAGE, MAX_PAGES = 100, 10


@dataclass(frozen=True)
class CASecret:
    """A CA key pair as read from its Secret."""

    secret_name: str
    key_pair: KeyPair

    @property
    def fingerprint(self) -> str:
        return self.key_pair.fingerprint


@dataclass(frozen=True)
class OwnedCAs:
    """Every CA Secret created for the policy, as listed; ``capped`` when there were more."""

    secrets: tuple[dict[str, Any], ...]
    capped: bool = False


class CAStore(Protocol):
    """Where a policy's CA key pairs live (see the module docstring): every read and write of a CA
    Secret by a stage goes through one of these."""

    def object(self, name: str) -> dict[str, Any] | None:
        """The Secret as read in this pass (None: it does not exist)."""

    def load(self, name: str) -> tuple[CASecret | None, Problem | None]:
        """The policy's CA in that Secret; (None, None) when it does not exist, (None, problem)
        when it is not this policy's (``CANotOwned``) or holds no usable CA (``CAUnusable``)."""

    def create(self, name: str, key_pair: KeyPair, *, rotation_id: str | None = None) -> bool:
        """Create-only; False when a Secret of that name exists (it is never overwritten)."""

    def promote(self, name: str, new: CASecret, *, old_fingerprint: str, keep_old_as: str) -> None:
        """Make ``new`` the CA in ``name``; the old one (when it is still ``old_fingerprint``) is
        kept, create-only, in ``keep_old_as`` until step 5 deletes it."""

    def delete(self, name: str, fingerprint: str) -> bool:
        """Delete the Secret if it is this policy's and still holds that CA."""

    def adopt(self, name: str, live_uids: frozenset[str]) -> bool:
        """Take over a CA Secret a deleted predecessor of the same name left (``spec.ca.adopt``)."""

    def owned(self) -> OwnedCAs:
        """Every CA Secret created for the policy (bounded)."""

    def sweep_expired(self, keep: set[str], now: dt.datetime) -> list[str]:
        """Delete the policy's CA Secrets whose CA has expired, except those holding ``keep``."""

    def delete_all(self, owned: OwnedCAs) -> int:
        """``deletionPolicy: Delete``: delete every CA Secret listed in ``owned``, keys and all."""


def _decode(data: Mapping[str, str], key: str) -> bytes | None:
    value = data.get(key)
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _ca_key_pair(obj: Mapping[str, Any], name: str, where: str) -> tuple[CASecret | None, Problem | None]:
    """The CA key pair in a Secret's ``tls.crt``/``tls.key``, or why it cannot sign: shared by the
    policy's own CA Secrets and a cert-manager Issuer's, which differ only in who may own them."""
    data = obj.get("data") or {}
    cert_pem, key_pem = _decode(data, "tls.crt"), _decode(data, "tls.key")
    if not cert_pem or not key_pem:
        return None, Problem("CAUnusable", f"{where} needs tls.crt and tls.key (PEM)")
    try:
        kp = load_key_pair(cert_pem, key_pem)
    except Exception as e:  # noqa: BLE001 - reported; the message names no key material
        return None, Problem("CAUnusable", f"{where} cannot be used: {type(e).__name__}: "
                                           f"{str(e).splitlines()[0][:200] if str(e) else ''}")
    if not summarize(kp.cert).is_ca:
        return None, Problem("CAUnusable", f"{where} holds a certificate that is not a CA (basicConstraints CA:FALSE)")
    return CASecret(name, kp), None


def parse_ca_secret(obj: Mapping[str, Any], owner: Owner) -> tuple[CASecret | None, Problem | None]:
    """``owner``'s CA key pair in a CA Secret as read, or why it is not usable by this policy."""
    meta = obj.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace", "")
    where = f"CA Secret {namespace}/{name}"
    role = (meta.get("labels") or {}).get(ROLE_LABEL, ROLE_CA)
    if (earlier := predecessor_uid(obj, owner)) is not None and role == ROLE_CA:
        return None, Problem("CANotOwned", f"{where} was created for an earlier CertificatePolicy {owner.name} (uid "
                                           f"{earlier}), not for this one (uid {owner.uid}). If that policy was "
                                           f"deleted, {adopt_hint(owner)}: it takes over this Secret and the "
                                           "bundle targets and leaves that policy left, in one go")
    if not created_for(obj, owner) or role != ROLE_CA:
        return None, Problem("CANotOwned", f"{where} belongs to {owner_description(obj)}, not to CertificatePolicy "
                                           f"{owner.name}; a CA Secret serves one policy. To hand a CA made "
                                           f"elsewhere to this policy, label it {MANAGED_BY}={owner.name}")
    return _ca_key_pair(obj, name, where)


def _secret_data(kp: KeyPair) -> dict[str, bytes]:
    return {"tls.crt": kp.cert_pem, "tls.key": kp.key_pem, "ca.crt": kp.cert_pem}


class PolicyCASecrets:
    """A policy's CAs in ``kubernetes.io/tls`` Secrets of the operator's namespace, each created
    for the policy (``certpolicy.io/managed-by`` + UID, role ``ca``) or handed over by label."""

    def __init__(self, raw: RawClient, owner: Owner, namespace: str) -> None:
        self.raw, self.owner, self.namespace = raw, owner, namespace
        self._objects: dict[str, dict[str, Any] | None] = {}

    def object(self, name: str) -> dict[str, Any] | None:
        if name not in self._objects:
            self._objects[name] = read(self.raw, "Secret", self.namespace, name)
        return self._objects[name]

    def load(self, name: str) -> tuple[CASecret | None, Problem | None]:
        obj = self.object(name)
        return (None, None) if obj is None else parse_ca_secret(obj, self.owner)

    def create(self, name: str, key_pair: KeyPair, *, rotation_id: str | None = None) -> bool:
        if self.object(name) is not None:
            return False
        stored = create_managed_secret(self.raw, self.namespace, name, self.owner, _secret_data(key_pair), role=ROLE_CA,
                                       annotations={ROTATION_ANNOTATION: rotation_id} if rotation_id else None)
        if stored is None:  # created by someone else a moment ago: read theirs when asked
            self._objects.pop(name, None)
            return False
        self._objects[name] = stored
        return True

    def promote(self, name: str, new: CASecret, *, old_fingerprint: str, keep_old_as: str) -> None:
        current, _ = self.load(name)
        if current is not None and current.fingerprint == new.fingerprint:
            return
        if current is not None and current.fingerprint == old_fingerprint:
            self.create(keep_old_as, current.key_pair)  # the old key pair, until step 5 ends
        obj = self.object(name)
        if obj is None:
            if not self.create(name, new.key_pair):
                raise ApiException(status=409, reason=f"Conflict: CA Secret {self.namespace}/{name} was created "
                                                      "meanwhile; decided again on the next pass")
            return
        self._update(name, obj, new.key_pair)

    def _update(self, name: str, obj: Mapping[str, Any], key_pair: KeyPair) -> None:
        try:
            self._objects[name] = update_managed_secret(self.raw, obj, self.owner, _secret_data(key_pair),
                                                        role=ROLE_CA).obj
        except ApiException:
            self._objects.pop(name, None)  # 409: changed since it was read; read again when asked
            raise

    def delete(self, name: str, fingerprint: str) -> bool:
        stored, _ = self.load(name)  # None unless it is ours
        obj = self.object(name)
        if stored is None or obj is None or stored.fingerprint != fingerprint:
            return False
        return self._delete(name, obj)

    def _delete(self, name: str, obj: Mapping[str, Any]) -> bool:
        try:
            deleted = delete_managed_secret(self.raw, obj, self.owner, role=ROLE_CA)
        except ApiException:
            self._objects.pop(name, None)
            raise
        self._objects[name] = None
        return deleted

    def adopt(self, name: str, live_uids: frozenset[str]) -> bool:
        patched = adopt_object(self.raw, "Secret", self.object(name), self.owner, live_uids)
        if patched is not None:
            self._objects[name] = patched
        return patched is not None

    def owned(self) -> OwnedCAs:
        found: list[dict[str, Any]] = []
        query: dict[str, Any] = {"labelSelector": f"{MANAGED_BY}={self.owner.name},{ROLE_LABEL}={ROLE_CA}",
                                 "limit": LIST_PAGE}
        for _page in range(MAX_PAGES):
            listing = self.raw.get(f"/api/v1/namespaces/{self.namespace}/secrets", query)
            for obj in listing.get("items") or ():
                obj.setdefault("metadata", {}).setdefault("namespace", self.namespace)
                if created_for(obj, self.owner):
                    found.append(obj)
                    self._objects[obj["metadata"]["name"]] = obj
            query["continue"] = (listing.get("metadata") or {}).get("continue")
            if not query["continue"]:
                return OwnedCAs(tuple(found))
        return OwnedCAs(tuple(found), capped=True)

    def sweep_expired(self, keep: set[str], now: dt.datetime) -> list[str]:
        deleted = []
        for obj in self.owned().secrets:
            pair, _ = parse_ca_secret(obj, self.owner)
            if pair is None or pair.fingerprint in keep or pair.key_pair.cert.not_valid_after_utc >= now:
                continue
            if self._delete(pair.secret_name, obj):
                deleted.append(pair.secret_name)
        return deleted

    def delete_all(self, owned: OwnedCAs) -> int:
        return sum(self._delete(obj["metadata"]["name"], obj) for obj in owned.secrets)


def parse_issuer_ca_secret(obj: Mapping[str, Any], where: str) -> tuple[CASecret | None, Problem | None]:
    """The CA key pair a cert-manager CA Issuer signs with (its Secret's ``tls.crt``/``tls.key``).
    No ownership test: the policy's ``spec.ca.certManager`` is the opt-in."""
    return _ca_key_pair(obj, obj["metadata"]["name"], where)


class IssuerCASecret(PolicyCASecrets):
    """``spec.ca.certManager``: the policy's active CA is the one a cert-manager CA Issuer signs
    with, in the Issuer's Secret (``spec.ca.secretName`` names it and must be the Issuer's
    ``spec.ca.secretName``). Every other CA Secret of the policy (a rotation's new CA, the old one
    kept until step 5) is kept as :class:`PolicyCASecrets` keeps them, in the operator's namespace.

    The Issuer's Secret is never created, deleted, labelled or adopted; it is written at one
    moment only, the promotion of step 3 (:func:`~certpolicy.kube.certmanager.write_issuer_ca_secret`:
    ``tls.crt``, ``tls.key`` and ``ca.crt``, at the resourceVersion read). Before step 3 nothing of
    the Issuer is written, so an abort leaves it untouched.
    """

    def __init__(self, raw: RawClient, owner: Owner, namespace: str, *, active: str, issuer: IssuerRef) -> None:
        super().__init__(raw, owner, namespace)
        self.active, self.issuer = active, issuer
        self._issuer_problem: Problem | None | bool = False  # False: not checked yet in this pass

    def _check_issuer(self) -> Problem | None:
        """The Issuer exists, is a CA Issuer, and signs with the Secret the policy names (read
        once per pass)."""
        if self._issuer_problem is False:
            self._issuer_problem = self._issuer_mismatch(read_issuer(self.raw, self.issuer))
        return self._issuer_problem if isinstance(self._issuer_problem, Problem) else None

    def _issuer_mismatch(self, obj: Mapping[str, Any] | None) -> Problem | None:
        if obj is None:
            return Problem("IssuerNotFound", f"{self.issuer} (spec.ca.certManager.issuerRef) does not exist; "
                                             "nothing is rotated")
        secret = (((obj.get("spec") or {}).get("ca")) or {}).get("secretName")
        if not secret:
            return Problem("IssuerSecretMismatch", f"{self.issuer} is not a CA Issuer (no spec.ca.secretName); "
                                                   "nothing is rotated")
        if secret != self.active:
            return Problem("IssuerSecretMismatch", f"{self.issuer} signs with Secret {secret!r}, not "
                                                   f"spec.ca.secretName {self.active!r}: set spec.ca.secretName "
                                                   f"to {secret!r}; nothing is rotated meanwhile")
        return None

    @property
    def where(self) -> str:
        return f"CA Secret {self.issuer.namespace}/{self.active} of {self.issuer}"

    def object(self, name: str) -> dict[str, Any] | None:
        if name != self.active:
            return super().object(name)
        if name not in self._objects:
            self._objects[name] = read(self.raw, "Secret", self.issuer.namespace, name)
        return self._objects[name]

    def load(self, name: str) -> tuple[CASecret | None, Problem | None]:
        if name != self.active:
            return super().load(name)
        if (problem := self._check_issuer()) is not None:
            return None, problem
        obj = self.object(name)
        if obj is None:  # never created here: a missing Issuer Secret is reported, never a CAMissing rotation
            return None, Problem("CAUnusable", f"{self.where} does not exist; certpolicy never creates it")
        certificate = ((obj.get("metadata") or {}).get("annotations") or {}).get(CERTIFICATE_NAME_ANNOTATION)
        if certificate:  # cert-manager would put its own CA back over a rotated one
            return None, Problem("IssuerSecretFromCertificate",
                                 f"{self.where} is written by cert-manager Certificate {self.issuer.namespace}/"
                                 f"{certificate} (an isCA Certificate): cert-manager would overwrite a rotated "
                                 "CA with its own. Rotate that Certificate with cert-manager, or hand certpolicy a "
                                 "CA Secret made outside cert-manager")
        return parse_issuer_ca_secret(obj, self.where)

    def create(self, name: str, key_pair: KeyPair, *, rotation_id: str | None = None) -> bool:
        if name == self.active:
            return False  # the Issuer's Secret is its owner's to create
        return super().create(name, key_pair, rotation_id=rotation_id)

    def _update(self, name: str, obj: Mapping[str, Any], key_pair: KeyPair) -> None:
        if name != self.active:
            super()._update(name, obj, key_pair)
            return
        if (problem := self._check_issuer()) is not None:
            raise NotManaged(problem.message)
        try:
            self._objects[name] = write_issuer_ca_secret(self.raw, obj, _secret_data(key_pair))
        except ApiException:
            self._objects.pop(name, None)
            raise

    def delete(self, name: str, fingerprint: str) -> bool:
        return False if name == self.active else super().delete(name, fingerprint)

    def adopt(self, name: str, live_uids: frozenset[str]) -> bool:
        return False if name == self.active else super().adopt(name, live_uids)


def ca_store(raw: RawClient, owner: Owner, namespace: str, spec: Mapping[str, Any] | None = None) -> CAStore:
    """The store of a policy's CAs: :class:`IssuerCASecret` with ``spec.ca.certManager`` (the
    opt-in to write the Issuer's Secret), :class:`PolicyCASecrets` otherwise."""
    ref = IssuerRef.from_spec(spec or {}, cert_manager_namespace())
    active = ((spec or {}).get("ca") or {}).get("secretName")
    if ref is not None and active:
        return IssuerCASecret(raw, owner, namespace, active=str(active), issuer=ref)
    return PolicyCASecrets(raw, owner, namespace)
