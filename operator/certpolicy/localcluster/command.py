"""``certpolicy local-cluster``: a control plane for developers, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, help="working directory (kubeconfig, logs, etcd data); default: a temp dir")
    parser.add_argument("--install-crd", action="store_true", help="install the CertificatePolicy CRD")
    parser.add_argument("--build-only", action="store_true", help="only obtain (build or find) the binaries")
    parser.add_argument("--node", action="store_true",
                        help="add one node (containerd, kubelet, kube-proxy, kube-controller-manager, "
                             "kube-scheduler) so Pods really run; needs root (see docs/operations.md)")
    parser.add_argument("--cert-manager", action="store_true",
                        help="with --build-only: also build cert-manager's controller for the integration tests "
                             "(tests/tools/cert-manager-controller, see docs/cert-manager.md)")


def run(args: argparse.Namespace) -> int:
    from certpolicy.localcluster import LocalCluster, ensure_binaries, ensure_node_binaries

    if args.build_only:
        print(ensure_binaries())
        if args.node:
            print(ensure_node_binaries())
        if args.cert_manager:
            from certpolicy.localcluster.binaries import ensure_go_main

            print(ensure_go_main("cert-manager-controller"))
        return 0
    cluster = LocalCluster(workdir=args.dir, node=args.node)
    cluster.start()
    try:
        if args.install_crd:
            from certpolicy.kube.crd import install_crd

            install_crd(cluster.kubeconfig)
        print(f"kube-apiserver {cluster.server} ready in {cluster.startup_seconds:.1f}s", flush=True)
        if args.node:
            from certpolicy.localcluster.node import NODE_NAME

            node = cluster.node_handle
            assert node is not None  # started with node=True
            print(f"node {NODE_NAME} Ready (containerd socket {node.containerd_socket})", flush=True)
        print(f"export KUBECONFIG={cluster.kubeconfig}", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    finally:
        cluster.stop()
    return 0
