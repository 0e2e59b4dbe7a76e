#!/usr/bin/env bash
# The full test suite: Rust unit + integration tests (they start throwaway
# PostgreSQL and MariaDB servers themselves), policy tests, config checks of
# the examples, and end-to-end tests through MCP clients we did not write.
# Missing servers or tools make it fail with an install hint, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
step() { printf '\n=== %s\n' "$*"; }

step "dependencies (PostgreSQL, MariaDB; installed with apt when running as root)"
if [ "$(id -u)" = 0 ]; then bash tests/install-deps.sh; fi

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --all-targets --locked

step "build without connector families (each family is a cargo feature of the server)"
cargo check -p tollgate --no-default-features --locked

step "cargo test (unit, corpus, integration on real servers)"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/cargo-test.log
grep -q "test result:" target/cargo-test.log

BIN=target/debug/tollgate
step "tollgate check on every example config"
# Secret references of the examples, set to throwaway values: `check` resolves them.
export SHOP_DATABASE_URL="postgres://tollgate@127.0.0.1:1/shop" TOLLGATE_MASK_KEY="check-only-key" \
  K8S_TOKEN="check-only-token" K8S_CA_PEM="$(printf -- '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')"
# The SSH example's private key: a throwaway one (ssh-keygen from openssh-client).
SSH_KEY_DIR="$(mktemp -d)"; trap 'rm -rf "$SSH_KEY_DIR"' EXIT
ssh-keygen -q -t ed25519 -N '' -f "$SSH_KEY_DIR/key"
export SSH_PRIVATE_KEY="$(cat "$SSH_KEY_DIR/key")"
for cfg in examples/*/tollgate.toml; do
  "$BIN" check --config "$cfg"
done

step "policy tests (policies/tests)"
"$BIN" policy test --config examples/policies/tollgate.toml
"$BIN" policy test --config examples/kubernetes/tollgate.toml
"$BIN" policy test --config examples/ssh/tollgate.toml

step "end-to-end through the official MCP Python SDK and the conformance suite"
bash tests/e2e/run.sh

step "web console in headless Chromium (playwright-core), approvals created through the MCP TypeScript SDK"
TOLLGATE_BIN=$PWD/$BIN bash tests/browser/run.sh
