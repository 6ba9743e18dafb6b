#!/usr/bin/env bash
# Builds the agent's container image from the repository's Dockerfile with podman (rootful,
# settings of scripts/podman.sh), without any registry:
#   - `debian:12` (the build stage's base) is made with `debootstrap --variant=minbase bookworm`
#     and `podman import`, once;
#   - the runtime stage's base is a local stand-in for gcr.io/distroless/cc-debian12 made from the
#     same Debian packages (scripts/containers/runtime-base.Containerfile), once;
#   - the image is tagged as the DaemonSet names it: http-autoinstrument:VERSION.
# Layers and the build's cargo caches stay in podman's storage under the cache directory, so a
# second build recompiles only what changed. Prints the image's size.
#
#   scripts/build-image.sh [--pull]   # --pull: use the registry's bases (a machine that has one)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PODMAN="$ROOT/scripts/podman.sh"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
IMAGE="${HTTP_AUTOINSTRUMENT_IMAGE:-localhost/http-autoinstrument:$VERSION}"
DEBIAN_BASE=docker.io/library/debian:12
RUNTIME_BASE=localhost/http-autoinstrument-runtime-base:debian12
PULL=never
[ "${1:-}" = --pull ] && PULL=missing

log() { printf '\033[1mbuild-image:\033[0m %s\n' "$*"; }
SECONDS=0

for tool in podman buildah debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not installed: run scripts/setup.sh" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "building the image needs root (rootful podman): sudo $0" >&2; exit 1; }

if [ "$PULL" = never ] && ! "$PODMAN" image exists "$DEBIAN_BASE"; then
  log "making $DEBIAN_BASE with debootstrap (minbase bookworm)"
  rootfs="$(mktemp -d "${TMPDIR:-/tmp}/debian12-rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" >&2; echo "debootstrap failed (log: $rootfs.log)" >&2; exit 1; }
  rm -f "$rootfs.log"
  # The sources of Debian's own debian:12 image: updates and security too (rustc-web and LLVM 22,
  # which the build stage installs, come from bookworm-security).
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  # An imported image has no environment: give it the PATH and command Debian's image has.
  tar -C "$rootfs" --numeric-owner -c . | "$PODMAN" import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$DEBIAN_BASE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

build=("$PODMAN" build --network host --pull="$PULL" --layers)
if [ "$PULL" = never ]; then
  if ! "$PODMAN" image exists "$RUNTIME_BASE"; then
    log "making $RUNTIME_BASE (a local gcr.io/distroless/cc-debian12)"
    "${build[@]}" -t "$RUNTIME_BASE" -f scripts/containers/runtime-base.Containerfile scripts/containers
  fi
  build+=(--build-arg "RUNTIME_BASE=$RUNTIME_BASE")
fi

# cargo in the build trusts what this machine trusts (some reach crates.io through a proxy
# that re-signs TLS with a CA of its own).
HOST_CA=/etc/ssl/certs/ca-certificates.crt
if [ -f "$HOST_CA" ]; then
  build+=(--volume "$HOST_CA:/run/build-ca.crt:ro" --build-arg CARGO_HTTP_CAINFO=/run/build-ca.crt)
fi

log "building $IMAGE from Dockerfile"
# The toolchain stage gets a name of its own: pruning below keeps named images and the layers
# under them, so the next build reuses it; a source change leaves only the build stage's layers
# (whose cargo state is in the build cache, not in them) to drop.
"${build[@]}" --target toolchain -t localhost/http-autoinstrument-toolchain:latest -f Dockerfile .
"${build[@]}" -t "$IMAGE" -f Dockerfile .
"$PODMAN" image prune -f >/dev/null

size="$("$PODMAN" image inspect --format '{{.Size}}' "$IMAGE")"
log "$IMAGE: $((size / 1000000)) MB ($size bytes); built in ${SECONDS} s"
