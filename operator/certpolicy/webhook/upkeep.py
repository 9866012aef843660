"""The webhook in ``certpolicy run``: served by every replica, registered and kept current by the leader.

Started before the standby phase and kept through leadership changes: a standby answers admission
calls from its warm inventory while it waits for the Lease. One thread does the upkeep, woken by
any policy change or change of the serving Secret, and at least every UPKEEP_PERIOD:

- the leader (the write gate is open) ensures the webhook's CA and serving certificate and writes
  the configuration when the enforcing policies, the serving CA or the endpoint changed;
- every replica loads the serving Secret when its resourceVersion changes, and holds the trust
  bundles that enforcing policies read (the inventory's named watch) so that decisions find them.

The port opens when the serving certificate is first loaded, and that waits for the first
enforcing policy: with none, the configuration has no entries and nothing calls the webhook.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from kubernetes.client import ApiClient

from certpolicy import metrics
from certpolicy.conditions import ENFORCED, Condition
from certpolicy.inventory.inventory import Inventory
from certpolicy.kube.managed import whoami
from certpolicy.kube.rawapi import RawClient, redact
from certpolicy.kube.writegate import WRITE_GATE, NotLeader
from certpolicy.policy.admission import ALLOW, Verdict
from certpolicy.webhook import registration, serving
from certpolicy.webhook.decide import Decider
from certpolicy.webhook.enforcement import judge
from certpolicy.webhook.policies import PolicyIndex
from certpolicy.webhook.review import Request
from certpolicy.webhook.server import WebhookServer

log = logging.getLogger(__name__)
UPKEEP_PERIOD = 10.0
#: How long a change of the caBundle, or of the serving certificate, is given to reach the API
#: server (it watches webhook configurations) and every replica (they watch the serving Secret)
#: before the next step of a webhook CA rotation relies on it.
DEFAULT_PROPAGATION = 30.0
PROPAGATION_ENV = "CERTPOLICY_WEBHOOK_CA_PROPAGATION"


@dataclass(frozen=True)
class Endpoint:
    """Where the API server reaches the webhook: a Service in the operator's namespace (in a
    cluster) or ``https://address:port`` (outside one: loopback)."""

    address: str
    port: int
    service: str | None = None  # the Service's name
    service_port: int = 443

    def hosts(self, namespace: str) -> tuple[str, ...]:
        if self.service:
            return (f"{self.service}.{namespace}.svc", f"{self.service}.{namespace}.svc.cluster.local")
        host = "127.0.0.1" if self.address in ("", "0.0.0.0", "::") else self.address  # noqa: S104
        return (host,)


class Webhook:
    def __init__(self, api_client: ApiClient, inventory: Inventory, endpoint: Endpoint, namespace: str, *,
                 propagation: float | None = None) -> None:
        self.raw = RawClient(api_client)  # writes pass the write gate: only the leader's go out
        self.inventory, self.endpoint, self.namespace = inventory, endpoint, namespace
        self.index = PolicyIndex(RawClient(api_client), watch_timeout=inventory.watch_timeout)
        self.decider = Decider(self.index, inventory)
        self.server = WebhookServer(endpoint.address, endpoint.port, self.decide)
        self.operator_user: str | None = None
        self._serving_version: str | None = None
        #: the caBundle registered, and since when (monotonic): the next CA signs nothing before
        #: it has been registered for ``propagation`` seconds
        self._bundle_since: tuple[str, float] | None = None
        self._switched_at: float | None = None  # when the serving certificate moved to the next CA
        self.propagation = propagation if propagation is not None else float(
            os.environ.get(PROPAGATION_ENV) or DEFAULT_PROPAGATION)
        self._rotating = False
        self._held: set[tuple[str, str, str]] = set()
        self._left_out: list[str] = []  # enforcing policies beyond registration.MAX_POLICIES
        #: the configuration as last read back or written by this upkeep (None: not this time)
        self._live: dict | None = None
        self._serving_cert: x509.Certificate | None = None  # what the server serves
        #: each enforcing policy's Enforced condition, judged after every upkeep of the leader
        self._enforced: dict[str, Condition] = {}
        self._enforced_lock = threading.Lock()
        self._notify: Callable[[list[str]], None] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-upkeep", daemon=True)
        self.index.listeners.append(lambda _change: self._wake.set())
        keys = {(namespace, serving.SERVING_SECRET), (namespace, serving.CA_SECRET)}
        inventory.secrets.listeners.append(lambda change: self._wake.set() if change.key in keys else None)

    def start(self) -> Webhook:
        self.index.start()
        self.server.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)
        self.server.stop()
        self.index.stop()

    def decide(self, what: str, policy: str, request: Request) -> Verdict:
        if what == "secret":
            return self.decider.secret(policy, request)
        if what == "bundle":
            return self.decider.bundle(policy, request)
        return ALLOW

    # ---- upkeep ---------------------------------------------------------------------------------
    def enforced(self, policy: str) -> Condition | None:
        """The policy's ``Enforced`` condition as the last upkeep judged it (None: not judged,
        the policy is not enforcing or this replica is not the leader)."""
        with self._enforced_lock:
            return self._enforced.get(policy)

    def wake_with(self, callback: Callable[[list[str]], None] | None) -> None:
        """``callback(policies)`` is called (from the upkeep thread) with the policies whose
        ``Enforced`` verdict changed; the operator's policy loops, set again each time kopf runs."""
        self._notify = callback

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            error = None
            try:
                self._live = None
                self.upkeep()
                metrics.WEBHOOK_UPKEEP_FAILING.set(0)
            except NotLeader:
                pass  # lost the Lease meanwhile: the new leader does it
            except Exception as e:  # noqa: BLE001 - retried at the next period; logged, in the metric and the condition
                metrics.WEBHOOK_UPKEEP_FAILING.set(1)
                error = redact(f"{type(e).__name__}: {e}")[:200]
                log.warning("webhook upkeep failed (%s); retrying", error)
            try:
                self._judge(error)
            except NotLeader:
                pass
            except Exception as e:  # noqa: BLE001 - the verdicts are judged again after the next upkeep
                why = redact(f"{type(e).__name__}: {e}")[:200]
                log.warning("judging the enforcing policies' registration failed (%s)", why)
                self._unjudged(why)
            # A CA rotation moves on as soon as its delay allows; otherwise every UPKEEP_PERIOD.
            self._wake.wait(min(UPKEEP_PERIOD, self.propagation / 2) if self._rotating else UPKEEP_PERIOD)

    def _judge(self, error: str | None) -> None:
        """Each enforcing policy's ``Enforced`` verdict from the configuration as the API server
        holds it (webhook/enforcement.py); the policies whose verdict changed are woken."""
        if not WRITE_GATE.is_open():
            return  # a standby runs no policy loop; the leader judges
        live = self._live
        if live is None and (self.server.loaded.is_set() and self.index.synced):
            try:  # the upkeep failed before it read the configuration: read it now
                live = registration.read(self.raw)
            except Exception:  # noqa: BLE001 - unknown then: judged with the upkeep's error
                live = None
        enforcing = self.index.enforcing()
        verdicts = judge(enforcing, lambda p: registration.entries(p, self._client_config, "", self.namespace,
                                                                    self.operator_user),
                         live, self._serving_cert, error=error, left_out=frozenset(self._left_out))
        with self._enforced_lock:
            changed = sorted(n for n in set(verdicts) | set(self._enforced)
                             if verdicts.get(n) != self._enforced.get(n))
            self._enforced = verdicts
        notify = self._notify
        if changed and notify is not None:
            notify(changed)

    def _unjudged(self, why: str) -> None:
        """The verdicts could not be made: a True of the last judgement would now speak for what
        was not checked, so every policy judged before is Unknown until the next judgement."""
        message = f"whether this policy's enforcement is in force could not be judged ({why}); retried within 10 s"
        with self._enforced_lock:
            before = self._enforced
            self._enforced = {name: Condition(ENFORCED, None, "EnforcementUnjudged", message) for name in before}
            changed = sorted(n for n in before if before[n] != self._enforced[n])
        notify = self._notify
        if changed and notify is not None:
            notify(changed)

    def upkeep(self) -> None:
        if WRITE_GATE.is_open():  # the leader
            self._leader_upkeep()
        else:
            self._load_serving()
        self._hold_bundles()

    def _leader_upkeep(self) -> None:
        """CA, configuration, serving certificate, in the order that lets the CA rotate without
        one failed call: the next CA is registered in the caBundle (next to the current one) for
        PROPAGATION before the serving certificate is issued from it, and the old CA leaves the
        caBundle PROPAGATION after every replica was handed the new serving certificate."""
        now, mono = dt.datetime.now(dt.UTC), time.monotonic()
        if self.operator_user is None:
            self.operator_user = self._whoami()
        switched = self._switched_at is not None and mono - self._switched_at >= self.propagation
        cas = serving.ensure_ca(self.raw, self.namespace, now, may_promote=switched)
        self._rotating = cas.next is not None
        if cas.next is None:
            self._switched_at = None
        bundle = base64.b64encode(cas.bundle_pem).decode()
        self._register(bundle)
        issuer = cas.current
        if cas.next is not None and self._bundle_since is not None and self._bundle_since[0] == bundle \
                and mono - self._bundle_since[1] >= self.propagation:
            issuer = cas.next
        serving.ensure_serving(self.raw, self.namespace, self.endpoint.hosts(self.namespace), issuer, now,
                               cas.bundle_pem)
        if issuer is cas.next and self._switched_at is None:
            self._switched_at = mono  # (a new leader finding it so waits the full delay again)
        self._load_serving()
        self._register(bundle)

    def _register(self, bundle: str) -> None:
        if not self.index.synced:
            return
        enforcing = self.index.enforcing()
        if enforcing and not self.server.loaded.is_set():
            return  # entries only once the port is open; none (stale ones removed) needs no server
        left_out = enforcing[registration.MAX_POLICIES:]
        metrics.WEBHOOK_POLICIES_UNREGISTERED.set(len(left_out))
        if left_out and [p.name for p in left_out] != self._left_out:
            log.warning("webhook configuration holds at most %d policies; not enforced: %s", registration.MAX_POLICIES,
                        ", ".join(p.name for p in left_out))
        self._left_out = [p.name for p in left_out]
        body = registration.configuration(enforcing, self._client_config, bundle, self.namespace, self.operator_user)
        self._live = live = registration.read(self.raw)
        written = registration.apply(self.raw, body, live)
        if written is not None:
            self._live = written
            log.info("webhook configuration %s: %d entries for %d enforcing policies", registration.CONFIG_NAME,
                     len(body["webhooks"]), len(enforcing))
        if self._bundle_since is None or self._bundle_since[0] != bundle:
            self._bundle_since = (bundle, time.monotonic())

    def _load_serving(self) -> None:
        """Load the serving certificate when it changed, which opens the port the first time. Not
        before a policy enforces: until then no entry sends the API server here, and the start of
        an operator with no enforcing policy does not import aiohttp before its first verdicts."""
        if not self.server.loaded.is_set() and not self.index.enforcing():
            return
        rec = self.inventory.secrets.get((self.namespace, serving.SERVING_SECRET))
        if rec is not None and rec.resource_version == self._serving_version:
            return
        current = serving.load(self.raw, self.namespace)
        if current is None or current.resource_version == self._serving_version:
            return
        self.server.load_certificate(current.cert_pem, current.key_pem)
        self._serving_cert = x509.load_pem_x509_certificate(current.cert_pem)
        self._serving_version = current.resource_version
        log.info("webhook serving certificate loaded (Secret %s/%s, resourceVersion %s)", self.namespace,
                 serving.SERVING_SECRET, current.resource_version)

    def _client_config(self, path: str) -> dict:
        ep = self.endpoint
        if ep.service:
            return {"service": {"namespace": self.namespace, "name": ep.service, "port": ep.service_port, "path": path}}
        host = ep.hosts(self.namespace)[0]
        return {"url": f"https://{host}:{self.server.bound_port or ep.port}{path}"}

    def _hold_bundles(self) -> None:
        want = {(p.bundle_source.kind, p.bundle_source.namespace, p.bundle_source.name)
                for p in self.index.enforcing() if p.bundle_source is not None}
        for kind, ns, name in want - self._held:
            self.inventory.named[kind].acquire("bundle", [(ns, name)])
        for kind, ns, name in self._held - want:
            self.inventory.named[kind].release("bundle", [(ns, name)])
        self._held = want

    def _whoami(self) -> str:
        """The operator's own user name (SelfSubjectReview): its bundle writes are not guarded."""
        try:  # a POST, so through the write gate: only the leader asks (a standby sends nothing)
            return whoami(self.raw)
        except NotLeader:
            raise
        except Exception as e:  # noqa: BLE001 - without it, the operator's own bundle writes are guarded too
            log.info("could not learn the operator's user name (%s); its own bundle writes are guarded too",
                     type(e).__name__)
            return ""
