#!/usr/bin/env bash
# Sets the machine up (idempotent), builds the agent in release mode and runs it on this host.
# Arguments go to the agent, e.g.: sudo scripts/run.sh --exe '**/svc' --plugins ./my-plugins
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/http-autoinstrument/target}"
"$ROOT/scripts/setup.sh" >&2
cargo build --release --locked -p http-autoinstrument --manifest-path "$ROOT/Cargo.toml" >&2
exec "$CARGO_TARGET_DIR/release/http-autoinstrument" "$@"
