#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), deployment manifests, formatting, lints, unit and end-to-end tests.
# End-to-end tests need root (real eBPF); under CI=true a missing capability fails them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/http-autoinstrument/target}"
export HTTP_AUTOINSTRUMENT_TOOLS="${HTTP_AUTOINSTRUMENT_TOOLS:-$HOME/.cache/http-autoinstrument/tools}"

scripts/setup.sh
echo "== manifests"
scripts/validate-manifests.sh
echo "== cargo fmt"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
