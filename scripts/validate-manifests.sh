#!/usr/bin/env bash
# Lints every YAML file under deployments/ and validates the Kubernetes manifests against a
# current Kubernetes schema (strict: unknown fields fail). Tools come from scripts/setup.sh.
# The agent-side checks of the same files are in host/tests/deployments.rs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.37.0}"
yamllint --strict -c .yamllint.yaml deployments/
kubernetes-validate --strict --quiet --kubernetes-version "$KUBERNETES_VERSION" \
  deployments/kubernetes/manifests/*.yaml deployments/kubernetes/backend.example.yaml
echo "manifests: lint and Kubernetes $KUBERNETES_VERSION schema validation passed"
