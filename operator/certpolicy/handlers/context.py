"""One reconciliation pass of one policy: everything its stages share, in one object.

A pass reads the policy once, then runs its stages (CA, rotation, bundles, issuance, evaluation)
in order. Each stage takes the :class:`PassContext` plus keyword-only arguments for what the
previous stages produced, and adds what it found to the pass's :class:`StageOutput`. Nothing is
passed along only to be passed on: a stage that needs the clients, the policy's name, its spec
or the time of the pass reads them here. What several stages read from the API alike (the
password Secrets, the CA Secrets) is read once per pass, through the context: ``passwords`` and
``cas``, which is also the only writer of CA Secrets (:mod:`certpolicy.handlers.castore`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from certpolicy import API_VERSION, KIND
from certpolicy.conditions import Condition
from certpolicy.handlers.castore import CAStore, ca_store
from certpolicy.handlers.passwords import PasswordSecrets
from certpolicy.handlers.problems import Problem
from certpolicy.handlers.runtime import PolicyMemory
from certpolicy.inventory.inventory import Inventory
from certpolicy.kube.events import EventRecorder, ObjectRef
from certpolicy.kube.ownership import Owner
from certpolicy.kube.rawapi import RawClient
from certpolicy.policy.spec import Requirements


def policy_object_ref(policy: Owner) -> ObjectRef:
    """The one place a CertificatePolicy's ObjectRef (for its events) is built."""
    return ObjectRef(kind=KIND, name=policy.name, uid=policy.uid, api_version=API_VERSION)


@dataclass
class StageOutput:
    """What the stages of a pass produced: problems for ``Degraded``, status fields, extra
    conditions, and the earliest instant a stage must run again."""

    problems: list[Problem] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    conditions: list[Condition] = field(default_factory=list)
    next_at: dt.datetime | None = None
    warned: set[str] = field(default_factory=set)  # reasons of Warning events a stage posted on the policy

    def wake_by(self, when: dt.datetime | None) -> None:
        if when is not None and (self.next_at is None or when < self.next_at):
            self.next_at = when


@dataclass
class PassContext:
    raw: RawClient
    inventory: Inventory
    recorder: EventRecorder
    policy: Owner  # name and UID: what the policy's objects are written for
    generation: int | None
    spec: Mapping[str, Any]
    status: Mapping[str, Any]  # as read at the start of the pass
    annotations: Mapping[str, str]
    requirements: Requirements
    memory: PolicyMemory
    now: dt.datetime
    namespace: str  # the operator's: CA Secrets and truststore passwords live there
    out: StageOutput = field(default_factory=StageOutput)  # what the stages found, for the status
    wake: Callable[[], None] | None = None  # runs this policy's next pass soon (from any thread)
    passwords: PasswordSecrets = field(init=False)  # each password Secret read once in this pass
    cas: CAStore = field(init=False)  # the policy's CA Secrets: each read once in this pass, written only there

    def __post_init__(self) -> None:
        self.passwords = PasswordSecrets(self.raw)
        self.cas = ca_store(self.raw, self.policy, self.namespace, self.spec)

    @property
    def name(self) -> str:
        return self.policy.name

    def policy_event(self, type_: str, reason: str, message: str, key_parts: Sequence[str]) -> bool:
        """Post an event on the policy (once per transition: ``key_parts`` name it)."""
        if type_ == "Warning":
            self.out.warned.add(reason)
        return self.recorder.post(policy_object_ref(self.policy), type_, reason, message, key_parts, self.now)
