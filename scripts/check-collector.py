#!/usr/bin/env python3
"""Checks what a schema cannot about the example Collector (deployments/kubernetes/manifests):
its configuration's pipelines name only defined components; the image is a distribution that
has the k8sattributes processor; that processor looks pods up by the k8s.pod.uid the agent sets
and extracts the pod, namespace and owning workload; and the Collector's ServiceAccount is bound
to a ClusterRole granting what those extractions read (get, watch, list on pods and namespaces,
ReplicaSets for Deployment names, Jobs for CronJob names), with its token mounted.
Part of scripts/validate-manifests.sh. Exit status 1 with every problem listed."""
import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFESTS = os.path.join(ROOT, "deployments/kubernetes/manifests")
# Collector distributions that include k8sattributes (its README's "Distributions").
DISTRIBUTIONS = ("otel/opentelemetry-collector-contrib:", "otel/opentelemetry-collector-k8s:")
WANTED = ["k8s.pod.name", "k8s.namespace.name", "k8s.deployment.name", "k8s.statefulset.name",
          "k8s.daemonset.name", "k8s.job.name", "k8s.cronjob.name"]
READ = {"get", "watch", "list"}


def main():
    objects = []
    for name in sorted(os.listdir(MANIFESTS)):
        if name.endswith(".yaml"):
            with open(os.path.join(MANIFESTS, name)) as f:
                objects += [d for d in yaml.safe_load_all(f) if d]
    problems = []

    def one(kind, name):
        found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
        if len(found) != 1:
            problems.append(f"expected one {kind} {name}, found {len(found)}")
            return {}
        return found[0]

    deployment = one("Deployment", "otel-collector")
    configmap = one("ConfigMap", "otel-collector")
    if not deployment or not configmap:
        return problems
    config = yaml.safe_load(configmap["data"]["collector.yaml"])

    for pipeline, spec in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in spec.get(kind, []):
                if component not in (config.get(kind) or {}):
                    problems.append(f"pipeline {pipeline} names {kind[:-1]} {component}, not defined")
    for extension in config["service"].get("extensions", []):
        if extension not in (config.get("extensions") or {}):
            problems.append(f"service names extension {extension}, not defined")

    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if not container["image"].startswith(DISTRIBUTIONS):
        problems.append(f"image {container['image']} is not a distribution with k8sattributes: "
                        f"{' or '.join(d + 'VERSION' for d in DISTRIBUTIONS)}")

    processor = (config.get("processors") or {}).get("k8sattributes")
    if processor is None:
        problems.append("no k8sattributes processor")
        return problems
    if "k8sattributes" not in config["service"]["pipelines"]["traces"]["processors"]:
        problems.append("the traces pipeline does not run k8sattributes")
    rules = [s for a in processor.get("pod_association", []) for s in a.get("sources", [])]
    if {"from": "resource_attribute", "name": "k8s.pod.uid"} not in rules:
        problems.append("k8sattributes does not associate by the resource attribute k8s.pod.uid")
    if any(r.get("from") == "connection" for r in rules):
        problems.append("k8sattributes associates by connection: that names the agent's pod")
    metadata = processor.get("extract", {}).get("metadata", [])
    for attribute in WANTED:
        if attribute not in metadata:
            problems.append(f"k8sattributes does not extract {attribute}")

    # What the extractions read, and what the Collector's account may read.
    needed = {("", "pods"), ("", "namespaces")}
    if "k8s.deployment.name" in metadata:
        needed.add(("apps", "replicasets"))
    if "k8s.cronjob.name" in metadata:
        needed.add(("batch", "jobs"))
    namespace = deployment["metadata"]["namespace"]
    account = pod.get("serviceAccountName", "default")
    if pod.get("automountServiceAccountToken") is False:
        problems.append("the Collector's pod does not mount its service account token")
    one("ServiceAccount", account)
    granted = set()
    for binding in (o for o in objects if o["kind"] == "ClusterRoleBinding"):
        if {"kind": "ServiceAccount", "name": account, "namespace": namespace} not in binding["subjects"]:
            continue
        role = one("ClusterRole", binding["roleRef"]["name"])
        for rule in role.get("rules", []):
            if READ <= set(rule["verbs"]):
                granted |= {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
    for group, resource in sorted(needed - granted):
        problems.append(f"ServiceAccount {namespace}/{account} may not get/watch/list "
                        f"{resource} (apiGroup {group!r})")
    return problems


if __name__ == "__main__":
    found = main()
    for problem in found:
        print(f"check-collector: {problem}", file=sys.stderr)
    if found:
        sys.exit(1)
    print("collector: k8sattributes, its RBAC and the pipelines are consistent")
