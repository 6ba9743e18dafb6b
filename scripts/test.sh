#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), deployment manifests, formatting, lints, the container
# image, unit and end-to-end tests (among them the DaemonSet's pod run from the manifests).
# End-to-end tests need root (real eBPF); under CI=true a missing capability fails them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/http-autoinstrument/target}"
export HTTP_AUTOINSTRUMENT_TOOLS="${HTTP_AUTOINSTRUMENT_TOOLS:-$HOME/.cache/http-autoinstrument/tools}"

# Every cargo test summary is also kept here, to print one total at the end.
RESULTS="$(mktemp)"
# Tests that could not run here add their names to this file (host/tests/support/skip.rs); under
# CI=true such a test fails instead.
export HTTP_AUTOINSTRUMENT_SKIPPED="$(mktemp)"
trap 'rm -f "$RESULTS" "$HTTP_AUTOINSTRUMENT_SKIPPED"' EXIT

scripts/setup.sh
echo "== manifests"
scripts/validate-manifests.sh
echo "== cargo fmt"
cargo fmt --all --check
(cd guest-sdk && cargo fmt --check)
(cd plugins && cargo fmt --all --check)
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
(cd guest-sdk && cargo clippy --all-targets --locked -- -D warnings)
(cd plugins && cargo clippy --workspace --all-targets --locked -- -D warnings)
echo "== container image (scripts/build-image.sh; its layers and cargo caches are kept in ~/.cache)"
if [ "$(id -u)" = 0 ] || [ "${CI:-}" = true ]; then
  scripts/build-image.sh
else
  echo "skipped: building the image needs root (rootful podman): sudo scripts/test.sh"
fi
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee -a "$RESULTS"
echo "== guest SDK and example plugins (native unit tests)"
(cd guest-sdk && cargo test --locked) 2>&1 | tee -a "$RESULTS"
(cd plugins && cargo test --locked) 2>&1 | tee -a "$RESULTS"
echo "== plugin SDKs in Python, JavaScript and Go (the agent's golden batches) and their example plugins"
GO_SDK="${GO:-$HTTP_AUTOINSTRUMENT_TOOLS/go1.24.11/bin/go}"
python3 -m unittest discover -s guest-sdk/python/tests
(cd plugins/py-slow-marker && PYTHONPATH=../../guest-sdk/python python3 -m unittest test_app)
node --test guest-sdk/js/test/ plugins/js-drop-bots/
unformatted="$("$(dirname "$GO_SDK")/gofmt" -l guest-sdk/go plugins/go-filter)"
[ -z "$unformatted" ] || { echo "gofmt: not formatted: $unformatted" >&2; exit 1; }
for module in guest-sdk/go plugins/go-filter; do
  (cd "$module" && GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local "$GO_SDK" vet ./... \
    && GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local "$GO_SDK" test ./...)
done
(cd guest-sdk/go && GOOS=wasip1 GOARCH=wasm GOPROXY=off GOTOOLCHAIN=local "$GO_SDK" vet ./...)
echo "== plugin new: every language's project builds and passes its test"
GO="$GO_SDK" scripts/test-scaffold.sh
echo "== benchmarks (builds them and runs every step for a second; no timing is checked)"
if [ "$(id -u)" = 0 ] || [ "${CI:-}" = true ]; then
  HTTP_AUTOINSTRUMENT_SETUP_DONE=1 scripts/bench.sh --smoke
else
  echo "skipped: the benchmark smoke run attaches uprobes and needs root (sudo scripts/test.sh)"
fi
skipped="$(cut -f1 "$HTTP_AUTOINSTRUMENT_SKIPPED" | sort -u)"
if [ -n "$skipped" ]; then
  echo "skipped (could not run here; the reason is in each test's output):"
  printf '  %s\n' $skipped
fi
awk -v k="$(printf '%s' "$skipped" | grep -c .)" '/^test result:/ {p += $4; f += $6}
  END {printf "%d passed, %d failed, %d skipped\n", p - k, f, k}' "$RESULTS"
