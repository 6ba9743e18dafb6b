#!/usr/bin/env bash
# `http-autoinstrument plugin new` in every language: each project builds with its one command
# (./build.sh: its tests, then NAME.wasm), and its plugin, run by `plugin run` on the project's
# sample spans, drops /healthz and marks the other spans. Part of scripts/test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$HOME/.cache/http-autoinstrument"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
(cd "$ROOT" && cargo build -q -p http-autoinstrument)
AGENT="$CARGO_TARGET_DIR/debug/http-autoinstrument"
export GO="${GO:-${HTTP_AUTOINSTRUMENT_TOOLS:-$CACHE/tools}/go1.24.11/bin/go}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for lang in ${SCAFFOLD_LANGS:-rust python js go}; do
  name="demo-$lang"
  "$AGENT" plugin new "$name" --lang "$lang" --dir "$work"
  # Rust: scripts/build-plugins.sh's target directory, whose std for Wasm (rebuilt with Debian's
  # rustc-web) is reused.
  (cd "$work/$name" && CARGO_TARGET_DIR="${PLUGINS_CARGO_TARGET_DIR:-$ROOT/target/plugins-build}" ./build.sh)
  mkdir "$work/plugins-$lang"
  cp "$work/$name/$name.wasm" "$work/plugins-$lang/"
  printf 'memory-limit-mib = 256\n' >"$work/plugins-$lang/$name.toml"
  "$AGENT" plugin run --plugins "$work/plugins-$lang" --input "$work/$name/spans.jsonl" \
    --cache-dir "$CACHE/plugins" >"$work/out-$lang.jsonl"
  python3 - "$work/out-$lang.jsonl" "$name" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
name = sys.argv[2]
got = [(("kept" if "kept" in l else "dropped"), (l.get("kept") or l["dropped"])["attributes"]) for l in lines]
verdicts = [(k, a["url.path"], a.get(f"{name}.seen")) for k, a in got]
expected = [("dropped", "/healthz", None), ("kept", "/users/7", True), ("kept", "/orders", True)]
if verdicts != expected:
    sys.exit(f"{name}: plugin run gave {verdicts}, expected {expected}")
PY
  echo "scaffold $lang: builds, its test passes, and it runs in the agent's chain"
done
