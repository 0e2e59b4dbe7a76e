#!/usr/bin/env bash
# The web console's browser tests: headless Debian Chromium driven by
# playwright-core, against a real `tollgate serve` the harness starts, with
# approvals created by agents through the official MCP TypeScript SDK, and an
# SSH recording made on the Rust harness's throwaway OpenSSH server.
# Installs the pinned Node packages (npm ci) here; Chromium with apt when
# running as root, else fails with the install hint. Never skips.
# Env: TOLLGATE_BIN (skip the build), CHROMIUM (default /usr/bin/chromium),
#      SCREENSHOTS=1 (also rewrite docs/console/*.png).
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
REPO=$(cd ../.. && pwd)
die() { printf 'browser: ERROR: %s\n' "$*" >&2; exit 1; }
command -v node >/dev/null || die "node not found: apt-get install -y nodejs npm (node >= 20)"
command -v npm >/dev/null || die "npm not found: apt-get install -y npm"
command -v python3 >/dev/null || die "python3 not found (the harness creates the SQLite fixture with it): apt-get install -y python3"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "browser: installing Debian's chromium with apt"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  [ -x "$CHROMIUM" ] || die "Chromium not found at $CHROMIUM: apt-get install -y chromium (as root), or set CHROMIUM"
fi
export CHROMIUM
if [ ! -x /usr/sbin/sshd ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "browser: installing openssh-server with apt (the replay test records a real SSH session)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
  fi
  [ -x /usr/sbin/sshd ] || die "OpenSSH server missing (replay test): apt-get install -y openssh-server"
fi
if [ -z "${TOLLGATE_BIN:-}" ]; then
  (cd "$REPO" && cargo build -p tollgate --locked)
fi
# The Rust harness's throwaway sshd (tests/src/sshd.rs) and kube-apiserver (tests/src/kube.rs).
(cd "$REPO" && cargo build -p tollgate-tests --bin ssh-harness --bin kube-harness --locked --quiet)
npm ci --no-audit --no-fund --loglevel=error
# The OpenID Connect provider of oidc.test.mjs (node-oidc-provider), pinned in tests/oidc.
(cd ../oidc && npm ci --no-audit --no-fund --loglevel=error)
node --test --test-concurrency=1 --test-timeout=180000 "$HERE"/*.test.mjs
