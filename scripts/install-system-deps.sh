#!/usr/bin/env bash
# Installs what the tests and the demo need from the OS, when it is missing:
#   etcd (Debian's etcd-server) and Go (to build kube-apiserver/kubectl once, cached per user).
# Set CERTPOLICY_ASSETS to a directory with etcd, kube-apiserver and kubectl to skip all of this.
set -euo pipefail

if [[ -n "${CERTPOLICY_ASSETS:-}" && -x "${CERTPOLICY_ASSETS}/etcd" && -x "${CERTPOLICY_ASSETS}/kube-apiserver" ]]; then
  exit 0
fi

need=()
command -v etcd >/dev/null 2>&1 || [[ -x /usr/bin/etcd ]] || need+=(etcd-server)
command -v go >/dev/null 2>&1 || need+=(golang-go)

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

if ! go env GOVERSION | grep -Eq '^go1\.(2[6-9]|[3-9][0-9])'; then
  echo "warning: Go >= 1.26 is needed to build kube-apiserver 1.36 (found $(go env GOVERSION));" \
       "set CERTPOLICY_ASSETS to a directory with prebuilt binaries instead" >&2
fi
