#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), deployment manifests, formatting, lints, unit and end-to-end tests.
# End-to-end tests need root (real eBPF); under CI=true a missing capability fails them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/http-autoinstrument/target}"
export HTTP_AUTOINSTRUMENT_TOOLS="${HTTP_AUTOINSTRUMENT_TOOLS:-$HOME/.cache/http-autoinstrument/tools}"

# Every cargo test summary is also kept here, to print one total at the end.
RESULTS="$(mktemp)"
trap 'rm -f "$RESULTS"' EXIT

scripts/setup.sh
echo "== manifests"
scripts/validate-manifests.sh
echo "== cargo fmt"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee -a "$RESULTS"
echo "== guest SDK and example plugins (native unit tests)"
(cd guest-sdk && cargo test --locked) 2>&1 | tee -a "$RESULTS"
(cd plugins && cargo test --locked) 2>&1 | tee -a "$RESULTS"
awk '/^test result:/ {p += $4; f += $6} END {printf "%d passed, %d failed\n", p, f}' "$RESULTS"
