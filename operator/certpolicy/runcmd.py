"""``certpolicy run``: the operator process (a thin wrapper over kopf's runner).

SIGTERM (what the kubelet sends, and ``kubectl delete pod``) stops it cleanly with exit 0 at any
moment: while it starts, while it is a standby, and while kopf runs (kopf's own handlers then
stop it, and the Lease is handed over). Outside kopf's run, :class:`_Termination` catches the
signal, so a replica stopped a few seconds after it started does not die from it.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading

from certpolicy.environment import (
    ALLOW_SYSTEM_NAMESPACES_ENV,
    CERT_MANAGER_NAMESPACE_ENV,
    OPERATOR_NAMESPACE_ENV,
    allow_system_namespaces,
    cert_manager_namespace,
    check_intervals,
)
from certpolicy.kube.lease import DEFAULT_LEASE_NAME, DEFAULT_LEASE_NAMESPACE, LeaderElector, check_timing

#: After losing the Lease, kopf gets this long to stop before the process exits regardless, with
#: this status (the Pod restarts as a standby).
LOST_EXIT_GRACE = 20.0
EXIT_LEADERSHIP_LOST = 3


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--liveness", default=os.environ.get("CERTPOLICY_LIVENESS", "http://0.0.0.0:8080/healthz"),
                        help="kopf liveness endpoint URL (default: %(default)s)")
    parser.add_argument("--namespace", default=None,
                        help="the operator's own namespace, where CA Secrets live (env CERTPOLICY_NAMESPACE; "
                             "default certpolicy-system)")
    parser.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="port of the Prometheus /metrics endpoint (env CERTPOLICY_METRICS_PORT; default 9090; "
                             "0 = any free port, -1 = none). A port in use stops the operator with exit 2.")
    parser.add_argument("--allow-system-namespaces", action="store_true",
                        default=allow_system_namespaces(),
                        help="let bundles and issued leaves go to kube-system, kube-public and kube-node-lease "
                             "(env CERTPOLICY_ALLOW_SYSTEM_NAMESPACES; default: refused)")
    parser.add_argument("--probe-allow", default=None, metavar="PATTERNS",
                        help="comma-separated host patterns (name, *.suffix) and CIDRs that rotation probes may "
                             "connect to (env CERTPOLICY_PROBE_ALLOW; default: *.svc,*.svc.<cluster domain>)")
    env = os.environ.get
    parser.add_argument("--cert-manager-namespace", default=cert_manager_namespace(), metavar="NAMESPACE",
                        help="cert-manager's --cluster-resource-namespace: where the CA Secret of a ClusterIssuer "
                             "named by spec.ca.certManager.issuerRef lives (env CERTPOLICY_CERT_MANAGER_NAMESPACE; "
                             "default %(default)s)")
    parser.add_argument("--identity", default=None, metavar="NAME",
                        help="this replica's name: the Lease's holderIdentity, the user agent's suffix, events' "
                             "reportingInstance (env POD_NAME; default: the host name). Unique per replica.")
    parser.add_argument("--leader-elect", action=argparse.BooleanOptionalAction,
                        default=env("CERTPOLICY_LEADER_ELECT", "true").lower() in ("1", "true", "yes"),
                        help="hold the cluster's coordination.k8s.io Lease before writing anything; a replica "
                             "without it, of this install or another, is a warm standby "
                             "(env CERTPOLICY_LEADER_ELECT; default on)")
    parser.add_argument("--lease-namespace", default=env("CERTPOLICY_LEASE_NAMESPACE", DEFAULT_LEASE_NAMESPACE),
                        help="the Lease's namespace: the same for every install of the cluster, so that only one "
                             "install leads (env CERTPOLICY_LEASE_NAMESPACE; default %(default)s)")
    parser.add_argument("--lease-name", default=env("CERTPOLICY_LEASE_NAME", DEFAULT_LEASE_NAME),
                        help="the Lease's name (env CERTPOLICY_LEASE_NAME; default %(default)s)")
    parser.add_argument("--lease-duration", type=float, default=float(env("CERTPOLICY_LEASE_DURATION", "15")),
                        metavar="SECONDS", help="how long a standby waits after the Lease's last renewal before "
                                                "taking over (env CERTPOLICY_LEASE_DURATION; default %(default)g)")
    parser.add_argument("--renew-deadline", type=float, default=float(env("CERTPOLICY_RENEW_DEADLINE", "10")),
                        metavar="SECONDS", help="how long the leader may fail to renew before it stops writing and "
                                                "is a standby again (env CERTPOLICY_RENEW_DEADLINE; default %(default)g)")
    parser.add_argument("--retry-period", type=float, default=float(env("CERTPOLICY_RETRY_PERIOD", "2")),
                        metavar="SECONDS", help="interval between renewals and acquisition attempts "
                                                "(env CERTPOLICY_RETRY_PERIOD; default %(default)g)")
    parser.add_argument("--webhook-port", type=int, default=int(env("CERTPOLICY_WEBHOOK_PORT", "0")), metavar="PORT",
                        help="port of the admission webhook that spec.enforcement Warn and Deny use, served by every "
                             "replica (env CERTPOLICY_WEBHOOK_PORT; default 0 = any free port, -1 = none)")
    parser.add_argument("--webhook-address", default=env("CERTPOLICY_WEBHOOK_ADDRESS", "127.0.0.1"), metavar="ADDR",
                        help="address the webhook listens on (env CERTPOLICY_WEBHOOK_ADDRESS; default %(default)s)")
    parser.add_argument("--webhook-service", default=env("CERTPOLICY_WEBHOOK_SERVICE") or None, metavar="NAME",
                        help="the Service in the operator's namespace that routes to the webhook (env "
                             "CERTPOLICY_WEBHOOK_SERVICE); without it the API server is given https://ADDR:PORT")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def export_settings(args: argparse.Namespace) -> None:
    """Hand the flags to the modules that read them from the environment (certpolicy.environment,
    kube.client), so that kopf's handlers and ``certpolicy run`` see one value."""
    if args.identity:
        os.environ["POD_NAME"] = args.identity  # read by kube.client.instance_identity
    if args.namespace:
        os.environ[OPERATOR_NAMESPACE_ENV] = args.namespace
    if args.probe_allow is not None:
        os.environ["CERTPOLICY_PROBE_ALLOW"] = args.probe_allow
    if args.allow_system_namespaces:
        os.environ[ALLOW_SYSTEM_NAMESPACES_ENV] = "true"
    os.environ[CERT_MANAGER_NAMESPACE_ENV] = args.cert_manager_namespace  # read by handlers/castore.py


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the hot path of a (re)list.

    Parsing 10,000 Secrets allocates millions of short-lived objects (JSON, certificate
    summaries); with CPython's default threshold of 700 the collector ran ~800 times and took about
    a quarter of the initial list (measured: 4.4 s -> 3.5 s for 10,000 Secrets). Almost all of
    that garbage is freed by reference counting anyway. The modules imported by now live for the
    whole process, so they are frozen out of every future collection. No collection first: at this
    point one found nothing to free and took 16 ms of a 500-Secret start's 0.7 s.
    """
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)


def run(args: argparse.Namespace) -> int:
    from certpolicy import metrics

    termination = _Termination().install()
    # The metrics endpoint first: a port in use must stop the operator with a clear message, not
    # leave kopf retrying its start-up every 60 s while the liveness probe answers (see
    # metrics.MetricsUnavailable for why there is no fallback port).
    if args.metrics_port is not None:
        os.environ[metrics.PORT_ENV] = str(args.metrics_port)
    try:
        port = metrics.configured_port()
        bound = metrics.serve(port, metrics.configured_addr()) if port >= 0 else None
    except metrics.MetricsUnavailable as e:
        print(f"certpolicy run: {e}", file=sys.stderr)
        return 2
    if bound is not None:
        os.environ[metrics.PORT_ENV] = str(bound)  # what kopf's start-up handler finds already served

    if args.leader_elect:
        try:  # before anything starts: a bad setting stops the operator at once
            check_timing(args.lease_duration, args.renew_deadline, args.retry_period)
        except ValueError as e:
            print(f"certpolicy run: {e}", file=sys.stderr)
            return 2
    try:  # the re-check intervals (CERTPOLICY_PROBE_RETRY, ...): a typo stops the operator at once
        check_intervals()
    except ValueError as e:
        print(f"certpolicy run: {e}", file=sys.stderr)
        return 2
    export_settings(args)

    # The inventory's initial LIST starts before kopf is even imported: the API server encodes
    # pages on another core while this process loads kopf (~0.6 s). start_runtime adopts it.
    from certpolicy.inventory.inventory import Inventory
    from certpolicy.kube.client import new_api_client

    # Logging before anything logs: the webhook's first lines (its configuration, the serving CA's
    # first rotation step) come before kopf is imported and would otherwise be dropped.
    early_log = _early_logging(args.verbose)
    tune_gc()
    api_client = new_api_client()
    inventory = Inventory(api_client).start()
    metrics.COLLECTOR.inventory = inventory  # a standby's watches are scraped too
    webhook = _start_webhook(args, api_client, inventory)  # every replica answers, the standby too
    if termination.requested.is_set():
        _stop_webhook(webhook)
        inventory.stop()
        logging.getLogger().removeHandler(early_log)
        return 0
    # The Lease is asked for now, while the first LIST runs: a replica that finds it free leads by
    # the time the inventory has synced, in time for the head start below.
    standby = _Standby.begin(args, api_client, inventory) if args.leader_elect else None
    # Each known policy's first pass before kopf is even imported (handlers/headstart.py): on a
    # small cluster kopf's import was a third of the time to a complete status.
    from certpolicy.handlers.headstart import head_start
    from certpolicy.handlers.runtime import Runtime

    head_started: Runtime | None = head_start(api_client, inventory, webhook, termination.requested,
                                              standby.elector.wait_leading if standby is not None else None)

    import kopf

    import certpolicy.handlers.registry  # noqa: F401  (registers handlers)
    from certpolicy.handlers.settings import quiet_client_loggers

    gc.freeze()  # kopf's modules too
    logging.getLogger().removeHandler(early_log)  # kopf's handler from here on, same format
    kopf.configure(debug=args.verbose, verbose=args.verbose)  # logging, for the standby's lines too
    logging.getLogger("kopf.objects").setLevel(logging.INFO)
    quiet_client_loggers()
    log = logging.getLogger("certpolicy.operator")
    if bound is not None:
        log.info("metrics on http://%s:%d/metrics", metrics.configured_addr(), bound)

    # kopf's own identity, given rather than guessed: kopf would otherwise call getpass.getuser(),
    # which raises KeyError under a UID with no passwd entry (OpenShift's restricted-v2 runs the
    # container as an arbitrary UID). The replica's name says more than a user name anyway.
    from kopf._core.engines.peering import Identity  # kopf.run's parameter type, not re-exported

    from certpolicy.kube.client import instance_identity

    identity = Identity(instance_identity())

    if not args.leader_elect:
        metrics.LEADER.set(1)
        stop_flag = termination.stops(threading.Event())

        @kopf.on.cleanup()
        def release_stop_flag(**_) -> None:
            """kopf stopped on a signal its own handlers caught (they replace ours while it runs):
            set the stop flag it waits on in a thread of its own, or that thread holds up kopf's
            return and the process lingers until SIGKILL (as ``hand_over`` does below)."""
            stop_flag.set()

        # standalone: kopf's peering is not leader election (and would write KopfPeering objects).
        kopf.run(clusterwide=True, standalone=True, liveness_endpoint=args.liveness, identity=identity,
                 stop_flag=stop_flag, memo=kopf.Memo(api_client=api_client, inventory=inventory, webhook=webhook,
                                                     runtime=head_started))
        _stop_webhook(webhook)
        inventory.stop()
        return 0

    term = _Term()

    @kopf.on.cleanup()
    def hand_over(**_) -> None:
        """kopf has stopped its handlers: close the gate and release the Lease (when still held),
        so the standby takes over at its next read; a pass still running in a thread can no
        longer write. Then set the stop flag, which kopf waits on in a thread of its own: left
        unset, that thread would hold up kopf's return."""
        if term.elector is not None:
            term.elector.stop(release=True)
        term.stop_flag.set()

    # Standby until the Lease is held, leader until it is lost, standby again: the inventory stays
    # warm throughout and kopf runs only while this replica leads. A clean stop (SIGTERM to kopf)
    # ends the loop; SIGTERM to a standby stops it (it holds nothing) with exit 0 too.
    while True:
        termination.install()  # again: kopf's event loop resets SIGTERM to the default when it closes
        elector = (standby or _Standby.begin(args, api_client, inventory)).until_leader(termination.requested)
        standby = None
        if elector is None:
            break
        term.elector = elector
        term.stop_flag = termination.stops(threading.Event())
        term.elector.on_lost = term.lost
        metrics.LEADER.set(1)
        # standalone: kopf's peering is not leader election (and would write KopfPeering objects);
        # the Lease decides which replica runs kopf at all (docs/operations.md, "High availability").
        # The head start's runtime for the first term (its event memory and warm caches); a later
        # term starts afresh, as after a restart.
        memo = kopf.Memo(api_client=api_client, inventory=inventory, webhook=webhook)
        if head_started is not None:
            memo.runtime, head_started = head_started, None
        kopf.run(clusterwide=True, standalone=True, liveness_endpoint=args.liveness, stop_flag=term.stop_flag,
                 identity=identity, memo=memo)
        termination.install()
        term.cancel_exit()
        metrics.LEADER.set(0)
        if not term.elector.lost.is_set() or termination.requested.is_set():
            break
        log.warning("kopf stopped after the leader Lease was lost: standby again, inventory kept")
    _stop_webhook(webhook)
    inventory.stop()
    return 0


def _start_webhook(args: argparse.Namespace, api_client, inventory):
    """The admission webhook (certpolicy.webhook), or None with --webhook-port -1."""
    if args.webhook_port < 0:
        return None
    from certpolicy.environment import operator_namespace
    from certpolicy.webhook.upkeep import Endpoint, Webhook

    if args.leader_elect:
        from certpolicy.kube.writegate import WRITE_GATE

        WRITE_GATE.require_lease()  # closed from the start: a standby's webhook upkeep writes nothing
    endpoint = Endpoint(args.webhook_address, args.webhook_port, args.webhook_service)
    return Webhook(api_client, inventory, endpoint, operator_namespace()).start()


def _stop_webhook(webhook) -> None:
    if webhook is not None:
        webhook.stop()


class _Termination:
    """SIGTERM and SIGINT while kopf is not running: remembered, never fatal.

    Python's default for SIGTERM ends the process at once (status -15), leaving the Lease to
    expire and the Pod reported as failed; this handler only sets ``requested`` and the current
    kopf stop flag, and the start-up steps and the standby's wait look at it. kopf installs its
    own handlers while it runs and its event loop resets SIGTERM to the default when it closes,
    so :meth:`install` is called again after each run.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._kopf_stop: threading.Event | None = None

    def install(self) -> _Termination:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        self.requested.set()
        if self._kopf_stop is not None:
            self._kopf_stop.set()

    def stops(self, flag: threading.Event) -> threading.Event:
        """``flag`` is kopf's stop flag from now on: set by a signal, and at once if one came."""
        self._kopf_stop = flag
        if self.requested.is_set():
            flag.set()
        return flag


class _Term:
    """One leadership term: its elector and kopf's stop flag. On loss (the gate is already closed)
    kopf is stopped; if it has not stopped within LOST_EXIT_GRACE (a pass blocked on a dead
    connection), the process exits with EXIT_LEADERSHIP_LOST and its Pod restarts as a standby."""

    def __init__(self) -> None:
        self.elector: LeaderElector | None = None
        self.stop_flag = threading.Event()
        self._timer: threading.Timer | None = None

    def lost(self) -> None:
        self.stop_flag.set()
        self._timer = threading.Timer(LOST_EXIT_GRACE, os._exit, args=(EXIT_LEADERSHIP_LOST,))
        self._timer.daemon = True
        self._timer.start()

    def cancel_exit(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


#: kopf's own log format (kopf.configure's LogFormat.FULL), for the lines logged before it is loaded.
_KOPF_LOG_FORMAT = "[%(asctime)s] %(name)-20.20s [%(levelname)-8.8s] %(message)s"


def _early_logging(verbose: bool) -> logging.Handler:
    """A handler on the root logger, in kopf's format, for what happens before kopf is imported
    (the standby's first lines, the Lease taken); removed when kopf installs its own."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(_KOPF_LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in ("kubernetes", "urllib3"):  # as handlers.settings.quiet_client_loggers, without kopf
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


class _Standby:
    """A replica waiting for the leader Lease: its elector (already trying) and the /healthz it
    serves meanwhile (inventory warm, nothing written)."""

    def __init__(self, elector: LeaderElector, health) -> None:
        self.elector, self.health = elector, health

    @classmethod
    def begin(cls, args: argparse.Namespace, api_client, inventory) -> _Standby:
        """Start serving /healthz and trying for the Lease; returns at once."""
        from certpolicy import metrics
        from certpolicy.environment import operator_namespace
        from certpolicy.kube.client import instance_identity
        from certpolicy.kube.lease import LeaseConfig
        from certpolicy.kube.rawapi import RawClient
        from certpolicy.kube.writegate import WRITE_GATE
        from certpolicy.standby import StandbyHealth

        config = LeaseConfig(namespace=args.lease_namespace, identity=instance_identity(), name=args.lease_name,
                             install_namespace=operator_namespace(), lease_duration=args.lease_duration,
                             renew_deadline=args.renew_deadline, retry_period=args.retry_period)
        elector = LeaderElector(RawClient(api_client, gated=False), config, WRITE_GATE)
        health = StandbyHealth(args.liveness, inventory, f"{config.namespace}/{config.name}",
                               own_namespace=config.install_namespace).start()
        elector.on_observed = health.observe

        def acquired() -> None:  # it may write from now on: the head start does
            metrics.LEADER.set(1)
            health.leading()

        def lost() -> None:  # until kopf runs, which hands on_lost its own
            metrics.LEADER.set(0)
            health.lost()

        elector.on_acquired, elector.on_lost = acquired, lost
        logging.getLogger("certpolicy.operator").info("standby: inventory warming, waiting for Lease %s/%s as %s",
                                                      config.namespace, config.name, config.identity)
        metrics.LEADER.set(0)
        elector.start()
        return cls(elector, health)

    def until_leader(self, stop: threading.Event) -> LeaderElector | None:
        """Wait until this replica holds the Lease; return its elector, which keeps renewing it.
        None when ``stop`` is set first (SIGTERM): the elector is stopped, the Lease released if
        it was just taken."""
        elector, health = self.elector, self.health
        try:
            while not elector.wait_leading(0.2):  # a signal handler cannot wake a wait: look at ``stop`` often
                if stop.is_set():
                    break
                if elector.lost.is_set():
                    # Lost before kopf ran (the head start can take a while on a large cluster): a
                    # lost elector never leads again, so ask for the Lease afresh, as a standby.
                    logging.getLogger("certpolicy.operator").warning(
                        "standby: the Lease was lost before kopf started; asking for it again")
                    elector = self.elector = elector.next_term().start()
        finally:
            elector.on_observed = lambda holder, install: None
            health.clear()
            health.stop()  # kopf serves the same address from now on
        if stop.is_set():
            elector.stop(release=True)
            return None
        return elector
