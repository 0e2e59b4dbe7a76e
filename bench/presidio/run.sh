#!/usr/bin/env bash
# Compare Tollgate's in-process masking with Presidio's pattern recognizers on
# the same files: the labelled corpus (tests/corpus/mask/*.jsonl) and the
# generated throughput corpus that the Rust bench writes.
# Usage: bench/presidio/run.sh   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-target/presidio}
VENV=${VENV:-bench/presidio/.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r bench/presidio/requirements.txt
fi
# 1. Tollgate: benchmark table + export corpus, findings and throughput.
cargo bench -p gateway-core --bench masking -- --export "$OUT"
# 2. Presidio on the same files, and the ratio.
"$VENV/bin/python" bench/presidio/compare.py --dir "$OUT" --corpus tests/corpus/mask "$@"
