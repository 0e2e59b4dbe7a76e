#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine (run as root; CI does).
# Idempotent: an install of already-installed packages takes a few seconds.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: run as root (or install by hand: postgresql mariadb-server openssh-server openssl systemd python3-venv nodejs)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v mariadbd >/dev/null 2>&1 || need+=(mariadb-server)
command -v mariadb-install-db >/dev/null 2>&1 || need+=(mariadb-server)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)   # the SSH transport tests start their own sshd
command -v openssl >/dev/null 2>&1 || need+=(openssl)   # certificates for the PostgreSQL TLS test
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)   # verifies examples/systemd/tollgate.service
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "install-deps: postgresql $(ls /usr/lib/postgresql | tr '\n' ' ')and $(mariadbd --version 2>/dev/null | awk '{print $3}') present"
# etcd + a kube-apiserver built from Debian's source package, cached under
# ~/.cache/tollgate-kube (the first build takes several minutes).
bash "$(dirname "$0")/install-kube.sh"
