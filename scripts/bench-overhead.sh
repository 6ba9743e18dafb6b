#!/usr/bin/env bash
# Overhead of the agent on a traced Go service, measured side by side in one run:
#   none  - the service alone
#   count - a bare counting probe pair on the same entry/RET offsets (the floor)
#   full  - the agent (spans exported to a local OTLP sink when OTLP_SINK is set, else discarded stdout)
# The service runs on CPU 0 with GOMAXPROCS=1; wrk and the agent share CPU 1.
# Usage: sudo scripts/bench-overhead.sh [seconds per run] [rounds]   (needs scripts/setup.sh first)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${1:-10}"
ROUNDS="${2:-3}"
TOOLS="${HTTP_AUTOINSTRUMENT_TOOLS:-$HOME/.cache/http-autoinstrument/tools}"
GO_VERSION="${GO_VERSION:-1.24.11}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/http-autoinstrument/target}"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

cargo build --release -q -p http-autoinstrument
AGENT="$CARGO_TARGET_DIR/release/http-autoinstrument"
cp -r "$ROOT/host/tests/fixtures/goserver" "$WORK/src"
(cd "$WORK/src" && rm -f go.mod && GOTOOLCHAIN=local GOFLAGS=-mod=mod GOCACHE="$WORK/gocache" \
  "$TOOLS/go$GO_VERSION/bin/go" mod init fixture >/dev/null 2>&1 &&
  GOTOOLCHAIN=local GOCACHE="$WORK/gocache" "$TOOLS/go$GO_VERSION/bin/go" build -o "$WORK/goserver" .)

taskset -c 0 env GOMAXPROCS=1 "$WORK/goserver" -http 127.0.0.1:0 -https 127.0.0.1:0 >"$WORK/server.out" &
SERVER=$!
for _ in $(seq 100); do grep -q LISTENING "$WORK/server.out" 2>/dev/null && break; sleep 0.05; done
PORT="$(sed -n 's/.*http=\([0-9]*\).*/\1/p' "$WORK/server.out")"

run_wrk() {
  taskset -c 1 wrk -t1 -c8 -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/" >"$WORK/wrk.out"
  awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print rps, p50, p99}' "$WORK/wrk.out"
}

measure() {
  local mode="$1" agent=""
  if [ "$mode" != none ]; then
    taskset -c 1 "$AGENT" --pid "$SERVER" --probe-mode "$mode" --stats-interval-secs 0 \
      >"$WORK/agent.$mode.out" 2>"$WORK/agent.$mode.err" &
    agent=$!
    for _ in $(seq 600); do grep -q "tracing" "$WORK/agent.$mode.err" 2>/dev/null && break; sleep 0.05; done
    grep -q "tracing" "$WORK/agent.$mode.err" || { cat "$WORK/agent.$mode.err" >&2; exit 1; }
  fi
  local result; result="$(run_wrk)"
  if [ -n "$agent" ]; then
    kill -TERM "$agent"; wait "$agent" || true
    grep -o 'probe_entry_hits=[0-9]* probe_return_hits=[0-9]*' "$WORK/agent.$mode.out" | tail -1 >"$WORK/hits.$mode" || true
  fi
  echo "$result"
}

printf '%-6s %-6s %12s %10s %10s\n' round mode req/s p50 p99
for round in $(seq "$ROUNDS"); do
  for mode in none count full; do
    read -r rps p50 p99 < <(measure "$mode")
    printf '%-6s %-6s %12s %10s %10s\n' "$round" "$mode" "$rps" "$p50" "$p99"
    echo "$mode $rps" >>"$WORK/results"
  done
done
echo
echo "median req/s over $ROUNDS rounds of ${DURATION}s (service: 1 core, GOMAXPROCS=1):"
for mode in none count full; do
  med="$(awk -v m="$mode" '$1==m {print $2}' "$WORK/results" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
  printf '  %-6s %12s\n' "$mode" "$med"
done
echo "probe hits in the last full run: $(cat "$WORK/hits.full" 2>/dev/null)"
