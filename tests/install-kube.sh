#!/usr/bin/env bash
# Installs etcd + Go and builds kube-apiserver and kube-controller-manager from Debian's
# `kubernetes` source package (v1.20.2), offline (the tree carries vendor/). The binaries are cached
# under ~/.cache/tollgate-kube/ and only built when missing (~10 min on 2 cores). Run as root (CI does, through tests/install-deps.sh).
set -euo pipefail
CACHE="${TOLLGATE_KUBE_CACHE:-$HOME/.cache/tollgate-kube}"
BIN="$CACHE/bin"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
built() { [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; }
if ! built; then
  command -v go >/dev/null 2>&1 || need+=(golang-go)
  command -v make >/dev/null 2>&1 || need+=(make)
  command -v rsync >/dev/null 2>&1 || need+=(rsync)
  command -v dpkg-source >/dev/null 2>&1 || need+=(dpkg-dev)   # apt-get source unpacks with it
  command -v xz >/dev/null 2>&1 || need+=(xz-utils)
fi
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if built; then
  echo "install-kube: kube-apiserver and kube-controller-manager cached at $BIN ($("$BIN/kube-apiserver" --version 2>/dev/null))"
  exit 0
fi
start=$(date +%s)
A="$CACHE/apt"
rm -rf "$A" && mkdir -p "$A/parts" "$A/lists/partial" "$A/cache/archives/partial" "$CACHE/src"
# A private apt configuration with deb-src entries: the machine's own sources stay untouched.
sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$A/parts/src.sources"
APTO=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$A/parts"
      -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache")
apt-get "${APTO[@]}" update -qq
cd "$CACHE/src"
rm -rf kubernetes-*
apt-get "${APTO[@]}" source --download-only kubernetes
dpkg-source --no-check -x kubernetes_*.dsc >/dev/null
cd kubernetes-*/
KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean CGO_ENABLED=0 \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager"
mkdir -p "$BIN"
cp _output/bin/kube-apiserver _output/bin/kube-controller-manager "$BIN/"
cd "$CACHE" && rm -rf "$CACHE/src" "$A"
echo "install-kube: built kube-apiserver and kube-controller-manager in $(( $(date +%s) - start ))s, $(du -ch "$BIN"/* | tail -1 | cut -f1)"
