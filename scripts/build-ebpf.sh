#!/usr/bin/env bash
# Builds the aya-ebpf programs in ebpf/probes into one BPF object, as host/build.rs does with
# aya-build, for a build that takes it prebuilt (HTTP_AUTOINSTRUMENT_PROBES: the Dockerfile) and
# to check the toolchain at set-up. Uses rustup nightly with rust-src when present, else Debian's
# rustc-web (see scripts/setup.sh). Output: $OUT (default: target/bpf/http-autoinstrument-probes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/target/bpf/http-autoinstrument-probes}"
TARGET_DIR="${EBPF_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/bpf-build}"
export PATH="$HOME/.cargo/bin:/usr/lib/llvm-22/bin:$PATH"
# A build started from a cargo build script inherits variables meant for the host build.
unset RUSTC RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_TARGET CARGO_TARGET_DIR CARGO_MANIFEST_DIR CARGO_PKG_NAME
cd "$ROOT/ebpf/probes"
if command -v rustup >/dev/null 2>&1 && rustup run nightly rustc --print sysroot >/dev/null 2>&1 \
  && [ -d "$(rustup run nightly rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
  cargo=(rustup run nightly cargo)
elif [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ]; then
  cargo=(/usr/bin/cargo)
  export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
else
  echo "error: no toolchain to build the eBPF programs: run scripts/setup.sh (installs Debian's rustc-web and bpf-linker)" >&2
  exit 1
fi
command -v bpf-linker >/dev/null 2>&1 || { echo "error: bpf-linker not found: run scripts/setup.sh" >&2; exit 1; }
# What aya-build passes (host/build.rs), and the probes' own release settings.
export CARGO_TARGET_BPFEL_UNKNOWN_NONE_RUSTFLAGS="--cfg=bpf_target_arch=\"$(uname -m)\" -C debuginfo=2 -C link-arg=--btf"
export CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_PANIC=abort
"${cargo[@]}" build --release --target bpfel-unknown-none -Zbuild-std=core --target-dir "$TARGET_DIR" \
  --package http-autoinstrument-probes --bins
mkdir -p "$(dirname "$OUT")"
cp "$TARGET_DIR/bpfel-unknown-none/release/http-autoinstrument-probes" "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
echo "built $OUT"
