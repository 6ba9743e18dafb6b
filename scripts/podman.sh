#!/usr/bin/env bash
# Runs podman (or, as `scripts/podman.sh buildah ...`, buildah) with this project's settings:
# scripts/containers/containers.conf, and image storage under the cache directory, outside the
# clone like the cargo target directory, so that layers and build caches survive between CI runs.
#   scripts/podman.sh images
#   scripts/podman.sh buildah ...
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${HTTP_AUTOINSTRUMENT_CACHE:-$HOME/.cache/http-autoinstrument}"
STORAGE="${HTTP_AUTOINSTRUMENT_CONTAINERS:-$CACHE/containers}"

command -v podman >/dev/null 2>&1 || { echo "podman is not installed: run scripts/setup.sh" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  echo "the project's container engine runs rootful (eBPF needs it): run as root" >&2
  exit 1
fi

mkdir -p "$STORAGE"
# Run-time state (locks, container states) goes under /run, one directory per storage: two
# storages (two clones' caches) sharing one would corrupt each other's state.
RUN_STATE="/run/http-autoinstrument/$(printf %s "$STORAGE" | sha256sum | cut -c1-12)"
# Written on every call: the paths are this machine's, so the file cannot be checked in.
conf="$STORAGE/storage.conf"
new="$(printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/storage"\n' "$STORAGE" "$RUN_STATE")"
[ -f "$conf" ] && [ "$(cat "$conf")" = "$new" ] || printf '%s\n' "$new" >"$conf"

export CONTAINERS_CONF="$ROOT/scripts/containers/containers.conf"
export CONTAINERS_STORAGE_CONF="$conf"
# buildah keeps RUN --mount=type=cache directories under TMPDIR: keep them with the storage,
# outside the clone and across reboots.
export TMPDIR="$STORAGE/tmp"
mkdir -p "$TMPDIR"
if [ "${1:-}" = buildah ]; then
  shift
  exec buildah "$@"
fi
exec podman --tmpdir "$RUN_STATE/libpod" "$@"
