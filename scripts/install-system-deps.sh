#!/usr/bin/env bash
# Installs what the tests and the demo need from the OS, when it is missing:
#   etcd (Debian's etcd-server) and Go (to build kube-apiserver/kubectl once, cached per user);
#   a headless JRE for keytool (default-jre-headless): the tests check that Java reads the JKS and
#   PKCS#12 truststores the operator writes (tests marked certgen.needs_keytool).
# Set CERTPOLICY_ASSETS to a directory with etcd, kube-apiserver and kubectl to skip etcd and Go.
# With --node, also what a local node and the image builds need (make e2e): containerd, runc,
# the CNI plugins, iptables, debootstrap, buildah, gcc.
set -euo pipefail

node=0
[[ "${1:-}" == "--node" ]] && node=1

assets=0
if ((node == 0)) && [[ -n "${CERTPOLICY_ASSETS:-}" && -x "${CERTPOLICY_ASSETS}/etcd" && -x "${CERTPOLICY_ASSETS}/kube-apiserver" ]]; then
  assets=1
fi

need=()
command -v keytool >/dev/null 2>&1 || need+=(default-jre-headless)
if ((assets == 0)); then
  command -v etcd >/dev/null 2>&1 || [[ -x /usr/bin/etcd ]] || need+=(etcd-server)
  command -v go >/dev/null 2>&1 || need+=(golang-go)
fi
if ((node)); then
  for pair in containerd:containerd runc:runc iptables:iptables debootstrap:debootstrap buildah:buildah \
              gcc:gcc ip:iproute2; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
  done
  [[ -x /usr/lib/cni/bridge || -x /opt/cni/bin/bridge ]] || need+=(containernetworking-plugins)
  [[ -f /usr/include/stdio.h ]] || need+=(libc6-dev)
fi

if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
  else
    SUDO=
  fi
  echo "installing ${need[*]} with apt-get" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ((assets == 0)) && ! go env GOVERSION | grep -Eq '^go1\.(2[6-9]|[3-9][0-9])'; then
  echo "warning: Go >= 1.26 is needed to build kube-apiserver 1.36 (found $(go env GOVERSION));" \
       "set CERTPOLICY_ASSETS to a directory with prebuilt binaries instead" >&2
fi
