#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver from the k8s.io/kubernetes
# module, pinned in go.mod) and installs etcd, into a cache outside the repo.
# Idempotent: does nothing when the binaries are already there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '/^require k8s.io\/kubernetes/ {print $3}' "$here/go.mod")
minor=$(echo "$version" | cut -d. -f2)
out=${TRAIL_TESTBIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trail-operator/testbin/$version}
mkdir -p "$out"

if [ ! -x "$out/kube-apiserver" ]; then
  echo "building kube-apiserver $version into $out (cold: about 6 minutes)"
  start=$(date +%s)
  # Version ldflags: without them the server reports v0.0.0-master, which
  # kubectl and Helm's kubeVersion checks cannot parse.
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
      -o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
  echo "kube-apiserver built in $(( $(date +%s) - start )) s"
fi

if [ ! -x "$out/etcd" ]; then
  if ! command -v etcd >/dev/null 2>&1 && [ ! -x /usr/bin/etcd ]; then
    echo "installing etcd from Debian's etcd-server package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq etcd-server >/dev/null
  fi
  ln -sf "$(command -v etcd || echo /usr/bin/etcd)" "$out/etcd"
fi
"$out/kube-apiserver" --version
"$out/etcd" --version | sed -n 1p  # not head: pipefail would fail on its SIGPIPE
