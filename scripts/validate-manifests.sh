#!/usr/bin/env bash
# Checks the deployment files: lints every YAML file under deployments/, validates the Kubernetes
# manifests against a current Kubernetes schema (strict: unknown fields fail), checks the example
# Collector's k8sattributes set-up against its RBAC (scripts/check-collector.py), and verifies the
# systemd unit with systemd-analyze, installed where README.md says. Tools come from
# scripts/setup.sh. The agent-side checks of the same files are in host/tests/deployments.rs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.37.0}"
yamllint --strict -c .yamllint.yaml deployments/
kubernetes-validate --strict --quiet --kubernetes-version "$KUBERNETES_VERSION" \
  deployments/kubernetes/manifests/*.yaml deployments/kubernetes/backend.example.yaml
echo "manifests: lint and Kubernetes $KUBERNETES_VERSION schema validation passed"
python3 scripts/check-collector.py

# The unit as README.md installs it, in a root holding the system's own units (for the targets it
# orders itself after) and an executable at the agent's path: systemd-analyze checks that the
# commands exist, so this one stands in for the agent. Any diagnostic, even a warning such as an
# unknown key, fails the check.
if ! command -v systemd-analyze >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then
    echo "systemd-analyze is missing (scripts/setup.sh installs systemd) and CI=true forbids skipping" >&2
    exit 1
  fi
  echo "systemd unit: skipped: systemd-analyze is not installed (scripts/setup.sh)"
  exit 0
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/local/bin" "$root/usr/lib/systemd"
cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp deployments/systemd/http-autoinstrument.service "$root/etc/systemd/system/"
install -m 0755 /bin/true "$root/usr/local/bin/http-autoinstrument"
out="$(systemd-analyze verify --man=no --root="$root" /etc/systemd/system/http-autoinstrument.service 2>&1)" \
  && [ -z "$out" ] || { printf '%s\n' "$out" >&2; echo "systemd unit: systemd-analyze verify failed" >&2; exit 1; }
echo "systemd unit: systemd-analyze verify passed"
