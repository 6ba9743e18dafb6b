#!/usr/bin/env bash
# Builds the example plugins (plugins/) as WebAssembly components into $PLUGINS_OUT
# (default: target/plugins), e.g. target/plugins/filter.wasm. The agent's plugin tests and
# benchmark read them from there (HTTP_AUTOINSTRUMENT_PLUGINS_DIR overrides where they look).
#
# Rust plugins build with rustup's wasm targets when they are installed and with Debian's
# rustc-web (+ -Zbuild-std) otherwise; scripts/setup.sh installs what this needs.
# Usage: scripts/build-plugins.sh [--rust-only]   (--rust-only skips Python, JavaScript and Go)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${PLUGINS_OUT:-$ROOT/target/plugins}"
# Own target dir: the Debian toolchain's flags would otherwise invalidate the host's builds.
BUILD_DIR="${PLUGINS_CARGO_TARGET_DIR:-$ROOT/target/plugins-build}"
RUST_ONLY=0
[ "${1:-}" = "--rust-only" ] && RUST_ONLY=1
mkdir -p "$OUT"

log() { printf '\033[1mbuild-plugins:\033[0m %s\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "build-plugins: $1 not found; run scripts/setup.sh" >&2; exit 1; }; }

rustup_has_target() {
  command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$1"
}

# cargo_wasm TARGET PACKAGE...: builds release cdylibs for TARGET.
cargo_wasm() {
  local target="$1"; shift
  local pkgs=()
  for p in "$@"; do pkgs+=(-p "$p"); done
  if rustup_has_target "$target"; then
    log "rustup toolchain, $target: $*"
    (cd "$ROOT/plugins" && CARGO_TARGET_DIR="$BUILD_DIR/rustup" cargo build --release --target "$target" "${pkgs[@]}")
  else
    [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] || { echo "build-plugins: neither rustup's $target target nor Debian's rustc-web (/usr/bin/cargo) is installed; run scripts/setup.sh" >&2; exit 1; }
    log "Debian rustc-web, $target (-Zbuild-std): $*"
    (cd "$ROOT/plugins" && RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
      CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="-L/usr/lib/wasm32-wasi" \
      CARGO_TARGET_DIR="$BUILD_DIR/debian" \
      /usr/bin/cargo build --release --target "$target" -Zbuild-std=std,panic_abort "${pkgs[@]}")
  fi >&2
  if rustup_has_target "$target"; then echo "$BUILD_DIR/rustup/$target/release"; else echo "$BUILD_DIR/debian/$target/release"; fi
}

need wasm-tools
# No WASI at all: these plugins only import the agent's `host` interface.
# bench-shape-*: benchmark-only plugins (one per boundary shape, see bench/benches/plugins.rs).
dir="$(cargo_wasm wasm32-unknown-unknown plugin-filter plugin-redact plugin-route-template \
  bench-shape-packed bench-shape-typed bench-shape-records)"
for p in filter redact route-template; do
  wasm-tools component new "$dir/plugin_${p//-/_}.wasm" -o "$OUT/$p.wasm"
done
for p in bench-shape-packed bench-shape-typed bench-shape-records; do
  wasm-tools component new "$dir/${p//-/_}.wasm" -o "$OUT/$p.wasm"
done
# enrich reads environment variables (granted per plugin) and test-faults writes to stderr, so
# they target WASI preview 2.
dir="$(cargo_wasm wasm32-wasip2 plugin-enrich plugin-test-faults)"
cp "$dir/plugin_enrich.wasm" "$OUT/enrich.wasm"
cp "$dir/plugin_test_faults.wasm" "$OUT/test-faults.wasm"
for p in filter redact route-template test-faults enrich bench-shape-packed bench-shape-typed bench-shape-records; do
  wasm-tools validate --features component-model "$OUT/$p.wasm"
done
log "Rust plugins in $OUT: $(cd "$OUT" && ls -1 ./*.wasm | tr '\n' ' ')"
[ "$RUST_ONLY" = 1 ] && exit 0

# Python (componentize-py) and JavaScript (componentize-js) plugins, with their SDKs in guest-sdk/.
need componentize-py
log "Python: py-slow-marker"
componentize-py -d "$ROOT/wit" -w span-processor componentize app \
  -p "$ROOT/plugins/py-slow-marker" -p "$ROOT/guest-sdk/python" -o "$OUT/py-slow-marker.wasm"
need node
if [ ! -d "$ROOT/guest-sdk/js/node_modules/@bytecodealliance/componentize-js" ]; then
  log "npm ci in guest-sdk/js"
  (cd "$ROOT/guest-sdk/js" && npm ci --no-audit --no-fund)
fi
log "JavaScript: js-drop-bots"
node "$ROOT/guest-sdk/js/build.mjs" "$ROOT/plugins/js-drop-bots/plugin.js" "$OUT/js-drop-bots.wasm"
# Benchmark-only: plugins/filter written with each SDK and by hand (bench/benches/plugins.rs).
log "Python and JavaScript: bench-filter-{py,js}{,-packed}"
componentize-py -d "$ROOT/wit" -w span-processor componentize app \
  -p "$ROOT/plugins/bench-filter-py" -p "$ROOT/guest-sdk/python" -o "$OUT/bench-filter-py.wasm"
componentize-py -d "$ROOT/wit" -w span-processor componentize app \
  -p "$ROOT/plugins/bench-filter-py-packed" -o "$OUT/bench-filter-py-packed.wasm"
node "$ROOT/guest-sdk/js/build.mjs" "$ROOT/plugins/bench-filter-js/plugin.js" "$OUT/bench-filter-js.wasm"
node "$ROOT/guest-sdk/js/build.mjs" --raw "$ROOT/plugins/bench-filter-js-packed/plugin.js" \
  "$OUT/bench-filter-js-packed.wasm"
for p in py-slow-marker js-drop-bots bench-filter-py bench-filter-py-packed bench-filter-js bench-filter-js-packed; do
  wasm-tools validate --features component-model "$OUT/$p.wasm"
done

# Go plugins (standard Go toolchain >= 1.24, installed by scripts/setup.sh; GO overrides).
GO="${GO:-${HTTP_AUTOINSTRUMENT_TOOLS:-$HOME/.cache/http-autoinstrument/tools}/go1.24.11/bin/go}"
log "Go: go-filter ($("$GO" env GOVERSION))"
GO="$GO" "$ROOT/guest-sdk/go/build.sh" "$ROOT/plugins/go-filter" "$OUT/go-filter.wasm"
log "Go plugins in $OUT"
