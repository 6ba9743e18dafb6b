#!/usr/bin/env bash
# Every benchmark in one run, written up as docs/benchmarks.md (+ docs/benchmarks/*.svg, results.json):
# overhead on a traced Go service (none / floor / agent / agent + 3 plugins / bpftrace peer, HTTP and
# HTTPS), probe hits per request (server requests and client calls), the probes' run time with an
# incoming traceparent and per client call, pipeline replay throughput, agent CPU and RSS,
# start-to-first-span, plugin reload, and the criterion micro-benchmarks.
# Usage: sudo scripts/bench.sh            full run (about 20 minutes), rewrites docs/benchmarks.md
#        sudo scripts/bench.sh --smoke    every step for a second, report to a temporary directory (CI)
#        sudo scripts/bench.sh --compare OLD_AGENT [--traceparent]
#                                         the probes' run time per request of this tree's agent (B)
#                                         against another build (A), both at once (about a minute);
#                                         --traceparent: every request carries one
#        scripts/bench.sh --compare-plugins OLD_PLUGINS_DIR
#                                         the decode + 3 plugins replay with this tree's example
#                                         plugins (B) against other builds of them (A), taking
#                                         turns in one process (seconds; the comparison needs no root)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/http-autoinstrument/target}"
TOOLS="${HTTP_AUTOINSTRUMENT_TOOLS:-$HOME/.cache/http-autoinstrument/tools}"
GO_VERSION="${GO_VERSION:-1.24.11}"
SMOKE=""
COMPARE=""
COMPARE_ARGS=()
COMPARE_PLUGINS=""
case "${1:-}" in
  --smoke) SMOKE=1 ;;
  --compare-plugins)
    COMPARE_PLUGINS="$(realpath "${2:?usage: scripts/bench.sh --compare-plugins OLD_PLUGINS_DIR}")"
    test -f "$COMPARE_PLUGINS/redact.wasm" || { echo "bench.sh: $COMPARE_PLUGINS has no redact.wasm (a directory scripts/build-plugins.sh wrote, with PLUGINS_OUT)" >&2; exit 2; }
    ;;
  --compare)
    COMPARE="$(realpath "${2:?usage: scripts/bench.sh --compare OLD_AGENT_BINARY}")"
    test -x "$COMPARE" || { echo "bench.sh: $COMPARE is not an executable agent build" >&2; exit 2; }
    [ "${3:-}" = "--traceparent" ] && COMPARE_ARGS=(--compare-traceparent)
    ;;
esac

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [ -z "${HTTP_AUTOINSTRUMENT_SETUP_DONE:-}" ]; then
  scripts/setup.sh
fi

if [ -n "$COMPARE_PLUGINS" ]; then
  # No service, no agent: the replay runs in the benchmark's own process.
  cargo build --locked --release -q -p http-autoinstrument-bench
  taskset -c 1 "$CARGO_TARGET_DIR/release/http-autoinstrument-bench" --plugins target/plugins \
    --compare-plugins-with "$COMPARE_PLUGINS"
  exit 0
fi

# The traced service: the end-to-end fixture, built with the Go the tests use.
cp -r host/tests/fixtures/goserver "$WORK/src"
cp host/tests/fixtures/golisten/*.go "$WORK/src/"
(cd "$WORK/src" && rm -f go.mod &&
  GOTOOLCHAIN=local GOFLAGS=-mod=mod GOCACHE="$WORK/gocache" "$TOOLS/go$GO_VERSION/bin/go" mod init fixture >/dev/null 2>&1 &&
  GOTOOLCHAIN=local GOCACHE="$WORK/gocache" "$TOOLS/go$GO_VERSION/bin/go" build -o "$WORK/goserver" .)

if [ -n "$SMOKE" ]; then
  # Debug builds (what the test suite already built) and criterion's test mode: one pass each.
  cargo build --locked -q -p http-autoinstrument -p http-autoinstrument-bench
  cargo test --locked -q -p http-autoinstrument-bench --benches
  BIN="$CARGO_TARGET_DIR/debug"
  "$BIN/http-autoinstrument-bench" --smoke --agent "$BIN/http-autoinstrument" --server "$WORK/goserver" \
    --plugins target/plugins --out "$WORK/report/benchmarks.md" --command "sudo scripts/bench.sh --smoke"
  test -s "$WORK/report/benchmarks.md" && ls "$WORK/report/benchmarks/"*.svg >/dev/null
  # The side-by-side comparison, of the build with itself.
  "$BIN/http-autoinstrument-bench" --smoke --agent "$BIN/http-autoinstrument" --server "$WORK/goserver" \
    --plugins target/plugins --compare-with "$BIN/http-autoinstrument"
  "$BIN/http-autoinstrument-bench" --smoke --plugins target/plugins --compare-plugins-with target/plugins
  echo "bench smoke run: ok ($(grep -c '^|' "$WORK/report/benchmarks.md") table rows, $(ls "$WORK/report/benchmarks/"*.svg | wc -l) charts)"
  exit 0
fi

cargo build --locked --release -q -p http-autoinstrument -p http-autoinstrument-bench
if [ -n "$COMPARE" ]; then
  BIN="$CARGO_TARGET_DIR/release"
  taskset -c 1 "$BIN/http-autoinstrument-bench" --agent "$BIN/http-autoinstrument" --server "$WORK/goserver" \
    --plugins target/plugins --compare-with "$COMPARE" "${COMPARE_ARGS[@]}"
  exit 0
fi
# Micro-benchmarks first, on the tools core, so the report can include them.
rm -rf "$CARGO_TARGET_DIR/criterion"
taskset -c 1 cargo bench --locked -q -p http-autoinstrument-bench
BIN="$CARGO_TARGET_DIR/release"
taskset -c 1 "$BIN/http-autoinstrument-bench" --agent "$BIN/http-autoinstrument" --server "$WORK/goserver" \
  --plugins target/plugins --criterion "$CARGO_TARGET_DIR/criterion" --out docs/benchmarks.md
