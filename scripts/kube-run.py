#!/usr/bin/env python3
"""Runs a DaemonSet's pod from the Kubernetes manifests themselves with podman, on this machine
standing in for one node, doing what the kubelet does with the pod template: podman 4.3's
`kube play` refuses DaemonSets and ignores hostPID, so the `podman run` flags are derived here,
from the manifest, never copied by hand.

What is translated: hostPID/hostNetwork/hostIPC, the container's image, command, args, env
(values, fieldRef, configMapKeyRef, secretKeyRef; $(VAR) references), envFrom, securityContext
(user, privileged, allowPrivilegeEscalation, readOnlyRootFilesystem, capabilities, seccomp, at pod
and container level), resources (limits and requests), ports, the probes' HTTP endpoints,
terminationGracePeriodSeconds, and volumes: configMap and secret volumes laid out as the kubelet's
atomic writer does (timestamped directory, `..data` symlink, one symlink per key; an update swaps
`..data`; a subPath mount is bound to the file it resolved to at start and never sees updates),
emptyDir and hostPath. Fields that only matter to a scheduler (tolerations, priorityClassName,
...) are listed as not applicable; any other field is an error, so that a manifest change this
script does not understand fails loudly instead of being dropped.

The pod gets a network namespace of its own (slirp4netns: no bridge, no NAT rules), as a pod
without hostNetwork does; its container ports are published on ephemeral 127.0.0.1 ports, and
the host's loopback is reachable from the pod at 10.0.2.2 (where a test's stand-in collector
listens).

  kube-run.py run --state DIR [--manifests DIR] [--daemonset NAME] [--set CM/KEY=VALUE]
                  [--set-file CM/KEY=PATH] [--dry-run]   # prints the pod as JSON
  kube-run.py update-configmap --state DIR NAME [--set KEY=VALUE] [--set-file KEY=PATH] [--delete KEY]
  kube-run.py probe --state DIR                           # the kubelet's HTTP probes, once
  kube-run.py logs --state DIR
  kube-run.py delete --state DIR
"""
import argparse
import base64
import datetime
import json
import os
import random
import re
import shlex
import shutil
import socket
import string
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

try:
    import yaml
except ImportError:
    sys.exit("kube-run.py: python3-yaml is missing: run scripts/setup.sh")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PODMAN = [os.path.join(ROOT, "scripts", "podman.sh")]
# The host's loopback as the pod sees it (slirp4netns with allow_host_loopback).
HOST_FROM_POD = "10.0.2.2"
CONFIGMAP_LIMIT = 1024 * 1024

# Pod and container fields with no meaning on one node without a scheduler or an API server.
NOT_APPLICABLE_POD = {
    "tolerations", "priorityClassName", "priority", "nodeSelector", "affinity",
    "schedulerName", "topologySpreadConstraints", "preemptionPolicy", "serviceAccountName",
    "serviceAccount", "imagePullSecrets", "enableServiceLinks",
}
NOT_APPLICABLE_CONTAINER = {"terminationMessagePath", "terminationMessagePolicy"}


class Error(Exception):
    pass


def fail(message):
    raise Error(message)


# ---- manifests ---------------------------------------------------------------------------------

def load_manifests(directory):
    objects = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(directory, name)) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    doc["_file"] = name
                    objects.append(doc)
    return objects


def check_keys(what, obj, handled, not_applicable=frozenset()):
    unknown = set(obj) - set(handled) - set(not_applicable)
    if unknown:
        fail(f"{what}: {', '.join(sorted(unknown))} not supported by scripts/kube-run.py "
             "(translate it there, or the pod would run without it)")


def configmap_data(cm):
    """Key -> bytes, from data and binaryData."""
    out = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
    for k, v in (cm.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v)
    return out


def secret_data(secret):
    out = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    for k, v in (secret.get("stringData") or {}).items():
        out[k] = v.encode()
    return out


def check_size(name, data):
    size = sum(len(k) + len(v) for k, v in data.items())
    if size > CONFIGMAP_LIMIT:
        fail(f"ConfigMap {name} would hold {size} bytes, over Kubernetes' 1 MiB limit")


# ---- the kubelet's atomic writer ----------------------------------------------------------------

def publish(volume_dir, files, mode):
    """Publishes `files` (relative path -> bytes) into a configMap/secret volume the way the
    kubelet's atomic writer does: a new timestamped directory, `..data` swapped to it with a
    rename, one visible symlink per top-level name, then the old directory removed."""
    os.makedirs(volume_dir, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("..%Y_%m_%d_%H_%M_%S.")
    version = tempfile.mkdtemp(prefix=stamp, dir=volume_dir)
    os.chmod(version, 0o755)
    for rel, content in files.items():
        path = os.path.join(version, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, mode)
    data = os.path.join(volume_dir, "..data")
    old = os.readlink(data) if os.path.islink(data) else None
    tmp = os.path.join(volume_dir, "..data_tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.basename(version), tmp)
    os.rename(tmp, data)
    visible = {rel.split("/")[0] for rel in files}
    for name in visible:
        link = os.path.join(volume_dir, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..data", name), link)
    for name in os.listdir(volume_dir):
        if not name.startswith("..") and name not in visible:
            os.unlink(os.path.join(volume_dir, name))
    if old:
        shutil.rmtree(os.path.join(volume_dir, old))


def volume_files(source, data, what):
    """The files a configMap/secret volume shows: every key, or only `items`."""
    default_mode = source.get("defaultMode", 0o644)
    if "items" not in source:
        return {k: v for k, v in data.items()}, default_mode
    files = {}
    for item in source["items"]:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            fail(f"{what}: key {item['key']} not found")
        files[item["path"]] = data[item["key"]]
    return files, default_mode


# ---- translation ---------------------------------------------------------------------------------

def quantity(value, kind):
    """A Kubernetes quantity as cores (cpu) or bytes (memory)."""
    text = str(value)
    if kind == "cpu":
        return int(text[:-1]) / 1000 if text.endswith("m") else float(text)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def expand(text, env):
    """$(VAR) references, as Kubernetes expands them in command, args and env values."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def seccomp_flag(profile, state_dir, what):
    kind = (profile or {}).get("type")
    if kind is None:
        # The kubelet's default without --seccomp-default: no filter.
        return ["--security-opt", "seccomp=unconfined"]
    if kind == "Unconfined":
        return ["--security-opt", "seccomp=unconfined"]
    if kind == "RuntimeDefault":
        return []  # the engine's own default profile
    if kind == "Localhost":
        path = os.path.join(state_dir, "seccomp", profile["localhostProfile"])
        if not os.path.isfile(path):
            fail(f"{what}: seccomp profile {path} not found (the kubelet reads it from "
                 "<kubelet root>/seccomp/; put it under the state directory's seccomp/)")
        return ["--security-opt", f"seccomp={path}"]
    fail(f"{what}: seccompProfile type {kind!r} unknown")


def translate(objects, daemonset, state_dir, configmaps, secrets, node_name):
    """The pod (for JSON) and the `podman run` arguments, volumes materialised in state_dir."""
    namespace = daemonset["metadata"].get("namespace", "default")
    template = daemonset["spec"]["template"]
    pod = template["spec"]
    what = f"DaemonSet {namespace}/{daemonset['metadata']['name']}"
    check_keys(f"{what} pod spec", pod, {
        "containers", "volumes", "hostPID", "hostNetwork", "hostIPC", "securityContext",
        "terminationGracePeriodSeconds", "automountServiceAccountToken",
    }, NOT_APPLICABLE_POD)
    if pod.get("automountServiceAccountToken", True):
        fail(f"{what}: a service account token mount is not emulated; set "
             "automountServiceAccountToken: false or extend scripts/kube-run.py")
    if len(pod["containers"]) != 1 or pod.get("initContainers"):
        fail(f"{what}: only pods of one container are supported")
    container = pod["containers"][0]
    cwhat = f"{what} container {container['name']}"
    check_keys(cwhat, container, {
        "name", "image", "imagePullPolicy", "command", "args", "env", "envFrom", "ports",
        "livenessProbe", "readinessProbe", "startupProbe", "resources", "securityContext",
        "volumeMounts", "workingDir",
    }, NOT_APPLICABLE_CONTAINER)

    suffix = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    pod_name = f"{daemonset['metadata']['name']}-{suffix}"
    pod_uid = open("/proc/sys/kernel/random/uuid").read().strip()
    host_network = bool(pod.get("hostNetwork"))
    pod_ip = "127.0.0.1" if host_network else "10.0.2.100"
    args = ["run", "--detach", "--name", pod_name]
    args += ["--label", f"io.kubernetes.pod.name={pod_name}",
             "--label", f"io.kubernetes.pod.namespace={namespace}",
             "--label", f"io.kubernetes.pod.uid={pod_uid}"]
    for k, v in (template.get("metadata", {}).get("labels") or {}).items():
        args += ["--label", f"{k}={v}"]
    args += ["--pid=host"] if pod.get("hostPID") else ["--pid=private"]
    args += ["--ipc=host"] if pod.get("hostIPC") else []
    if host_network:
        args += ["--network=host"]
    else:
        args += ["--network=slirp4netns:allow_host_loopback=true", "--hostname", pod_name]
    if "terminationGracePeriodSeconds" in pod:
        args += ["--stop-timeout", str(pod["terminationGracePeriodSeconds"])]

    # securityContext: the container's fields override the pod's.
    pod_sc = pod.get("securityContext") or {}
    check_keys(f"{what} pod securityContext", pod_sc,
               {"runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile", "supplementalGroups"})
    sc = container.get("securityContext") or {}
    check_keys(f"{cwhat} securityContext", sc, {
        "runAsUser", "runAsGroup", "runAsNonRoot", "privileged", "allowPrivilegeEscalation",
        "readOnlyRootFilesystem", "capabilities", "seccompProfile",
    })
    merged = {**pod_sc, **sc}
    if "runAsUser" in merged:
        user = str(merged["runAsUser"])
        if "runAsGroup" in merged:
            user += f":{merged['runAsGroup']}"
        args += ["--user", user]
    if merged.get("runAsNonRoot") and merged.get("runAsUser", 0) == 0:
        fail(f"{cwhat}: runAsNonRoot with user 0: the kubelet refuses to start it")
    for group in pod_sc.get("supplementalGroups", []):
        args += ["--group-add", str(group)]
    if sc.get("privileged"):
        args += ["--privileged"]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if sc.get("readOnlyRootFilesystem"):
        # podman would add tmpfs on /tmp, /var/tmp and /run; Kubernetes does not.
        args += ["--read-only", "--read-only-tmpfs=false"]
    caps = sc.get("capabilities") or {}
    check_keys(f"{cwhat} capabilities", caps, {"add", "drop"})
    for cap in caps.get("drop", []):
        args += ["--cap-drop", cap]
    for cap in caps.get("add", []):
        args += ["--cap-add", cap]
    args += seccomp_flag(merged.get("seccompProfile"), state_dir, cwhat)

    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    if "cpu" in limits:
        args += ["--cpus", f"{quantity(limits['cpu'], 'cpu'):g}"]
    if "memory" in limits:
        args += ["--memory", str(quantity(limits["memory"], "memory"))]
    if "cpu" in requests:
        args += ["--cpu-shares", str(max(2, int(quantity(requests["cpu"], "cpu") * 1024)))]
    if "memory" in requests:
        args += ["--memory-reservation", str(quantity(requests["memory"], "memory"))]

    # Environment, in order, with $(VAR) references to earlier variables.
    field_values = {
        "spec.nodeName": node_name, "metadata.name": pod_name, "metadata.namespace": namespace,
        "metadata.uid": pod_uid, "status.podIP": pod_ip, "status.hostIP": "127.0.0.1",
        "spec.serviceAccountName": pod.get("serviceAccountName", "default"),
    }
    env = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            data = configmaps.get(source["configMapRef"]["name"])
        else:
            data = secrets.get(source["secretRef"]["name"])
        ref = source.get("configMapRef") or source.get("secretRef")
        if data is None:
            if ref.get("optional"):
                continue
            fail(f"{cwhat}: envFrom {ref['name']} not in the manifests")
        for k, v in data.items():
            env[prefix + k] = v.decode()
    for var in container.get("env", []):
        name = var["name"]
        if "value" in var:
            env[name] = expand(str(var["value"]), env)
            continue
        source = var.get("valueFrom") or {}
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
            if m:
                env[name] = (template.get("metadata", {}).get(m.group(1)) or {}).get(m.group(2), "")
            elif path in field_values:
                env[name] = field_values[path]
            else:
                fail(f"{cwhat}: env {name}: fieldRef {path} not supported")
        elif "configMapKeyRef" in source or "secretKeyRef" in source:
            ref = source.get("configMapKeyRef") or source.get("secretKeyRef")
            store = configmaps if "configMapKeyRef" in source else secrets
            value = (store.get(ref["name"]) or {}).get(ref["key"])
            if value is None:
                if ref.get("optional"):
                    continue
                fail(f"{cwhat}: env {name}: {ref['name']}/{ref['key']} not in the manifests")
            env[name] = value.decode()
        else:
            fail(f"{cwhat}: env {name}: valueFrom {sorted(source)} not supported")
    for name, value in env.items():
        args += ["--env", f"{name}={value}"]

    # Volumes, materialised under the state directory as the kubelet lays them out.
    volumes = {}
    for vol in pod.get("volumes", []):
        vname = vol["name"]
        kinds = set(vol) - {"name"}
        if kinds == {"configMap"} or kinds == {"secret"}:
            kind = "configMap" if "configMap" in vol else "secret"
            source = vol[kind]
            ref = source["name"] if kind == "configMap" else source["secretName"]
            data = (configmaps if kind == "configMap" else secrets).get(ref)
            if data is None:
                if not source.get("optional"):
                    fail(f"{what}: volume {vname}: {kind} {ref} not in the manifests")
                data = {}
            directory = os.path.join(state_dir, "volumes", f"kubernetes.io~{kind.lower()}", vname)
            files, mode = volume_files(source, data, f"{what}: volume {vname}")
            publish(directory, files, mode)
            volumes[vname] = {"kind": kind, "ref": ref, "dir": directory, "source": source}
        elif kinds == {"emptyDir"}:
            source = vol["emptyDir"] or {}
            if source.get("medium") == "Memory":
                volumes[vname] = {"kind": "tmpfs", "size": source.get("sizeLimit")}
                continue
            directory = os.path.join(state_dir, "volumes", "kubernetes.io~empty-dir", vname)
            os.makedirs(directory, exist_ok=True)
            os.chmod(directory, 0o777)
            # sizeLimit is enforced by the kubelet's eviction, which has no equivalent here.
            volumes[vname] = {"kind": "emptyDir", "dir": directory}
        elif kinds == {"hostPath"}:
            source = vol["hostPath"]
            path, kind = source["path"], source.get("type", "")
            if kind in ("DirectoryOrCreate",):
                os.makedirs(path, exist_ok=True)
            elif kind == "Directory" and not os.path.isdir(path):
                fail(f"{what}: volume {vname}: hostPath {path} is not a directory")
            elif kind == "File" and not os.path.isfile(path):
                fail(f"{what}: volume {vname}: hostPath {path} is not a file")
            volumes[vname] = {"kind": "hostPath", "dir": path}
        else:
            fail(f"{what}: volume {vname}: {sorted(kinds)} not supported")
    for mount in container.get("volumeMounts", []):
        check_keys(f"{cwhat} volumeMount {mount.get('name')}", mount,
                   {"name", "mountPath", "readOnly", "subPath", "mountPropagation"})
        vol = volumes.get(mount["name"])
        if vol is None:
            fail(f"{cwhat}: volumeMount {mount['name']} names no volume")
        target = mount["mountPath"]
        if vol["kind"] == "tmpfs":
            size = f",size={quantity(vol['size'], 'memory')}" if vol.get("size") else ""
            args += ["--mount", f"type=tmpfs,destination={target}{size}"]
            continue
        source = vol["dir"]
        if "subPath" in mount:
            # The kubelet binds what the subPath resolves to at start: a configMap key's file in
            # the current timestamped directory, which a later update replaces, unseen.
            source = os.path.realpath(os.path.join(source, mount["subPath"]))
            if not os.path.exists(source):
                fail(f"{cwhat}: subPath {mount['subPath']} of volume {mount['name']} does not exist")
        options = ["ro"] if mount.get("readOnly") else ["rw"]
        propagation = {"HostToContainer": "rslave", "Bidirectional": "rshared", "None": "rprivate"}
        options.append(propagation[mount.get("mountPropagation", "None")])
        args += ["--volume", f"{source}:{target}:{','.join(options)}"]

    ports = {}
    for port in container.get("ports", []):
        check_keys(f"{cwhat} port", port, {"name", "containerPort", "protocol", "hostPort"})
        proto = port.get("protocol", "TCP").lower()
        if not host_network:
            args += ["--publish", f"127.0.0.1::{port['containerPort']}/{proto}"]
        ports[port.get("name") or str(port["containerPort"])] = port["containerPort"]

    probes = {}
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(kind)
        if not probe:
            continue
        if "httpGet" not in probe:
            fail(f"{cwhat}: {kind}: only httpGet probes are supported")
        get = probe["httpGet"]
        port = get["port"]
        port = ports.get(port, port) if isinstance(port, str) else port
        if not isinstance(port, int):
            fail(f"{cwhat}: {kind} port {get['port']} names no container port")
        probes[kind] = {"scheme": get.get("scheme", "HTTP").lower(), "path": get.get("path", "/"),
                        "container_port": port,
                        **{k: probe[k] for k in ("initialDelaySeconds", "periodSeconds", "failureThreshold") if k in probe}}

    image = container["image"]
    policy = container.get("imagePullPolicy", "Always" if image.endswith(":latest") or ":" not in image else "IfNotPresent")
    args += ["--pull", {"Always": "always", "IfNotPresent": "missing", "Never": "never"}[policy]]
    if "workingDir" in container:
        args += ["--workdir", container["workingDir"]]
    if "command" in container:
        args += ["--entrypoint", json.dumps([expand(c, env) for c in container["command"]])]
    args.append(image)
    args += [expand(a, env) for a in container.get("args", [])]

    description = {
        "pod": pod_name, "pod_uid": pod_uid, "namespace": namespace, "node": node_name,
        "image": image, "host_from_pod": "127.0.0.1" if host_network else HOST_FROM_POD,
        "container_ports": ports, "probes": probes, "volumes": volumes,
    }
    return description, args


# ---- commands ------------------------------------------------------------------------------------

def podman(*args, capture=True):
    result = subprocess.run(PODMAN + list(args), capture_output=capture, text=True)
    if result.returncode != 0:
        fail(f"podman {' '.join(args[:2])} failed: {(result.stderr or '').strip()}")
    return (result.stdout or "").strip()


def parse_sets(sets, files, what):
    """--set NAME/KEY=VALUE and --set-file NAME/KEY=PATH (NAME/ omitted by update-configmap)."""
    out = []
    for text, is_file in [(s, False) for s in sets or []] + [(f, True) for f in files or []]:
        target, _, value = text.partition("=")
        if not _:
            fail(f"{what} {text!r}: expected KEY=VALUE")
        content = open(value, "rb").read() if is_file else value.encode()
        out.append((target, content))
    return out


def state_file(state_dir):
    return os.path.join(state_dir, "pod.json")


def load_state(state_dir):
    try:
        with open(state_file(state_dir)) as f:
            return json.load(f)
    except FileNotFoundError:
        fail(f"no pod in {state_dir}: start one with `kube-run.py run --state {state_dir}`")


def cmd_run(opts):
    objects = load_manifests(opts.manifests)
    daemonsets = [o for o in objects if o.get("kind") == "DaemonSet"
                  and (opts.daemonset is None or o["metadata"]["name"] == opts.daemonset)]
    if len(daemonsets) != 1:
        fail(f"{opts.manifests}: expected one DaemonSet{' named ' + opts.daemonset if opts.daemonset else ''}, "
             f"found {len(daemonsets)}")
    ds = daemonsets[0]
    namespace = ds["metadata"].get("namespace", "default")
    configmaps = {o["metadata"]["name"]: configmap_data(o) for o in objects
                  if o.get("kind") == "ConfigMap" and o["metadata"].get("namespace", "default") == namespace}
    secrets = {o["metadata"]["name"]: secret_data(o) for o in objects
               if o.get("kind") == "Secret" and o["metadata"].get("namespace", "default") == namespace}
    for target, content in parse_sets(opts.set, opts.set_file, "--set"):
        name, _, key = target.partition("/")
        if name not in configmaps or not key:
            fail(f"--set {target}: expected CONFIGMAP/KEY with a ConfigMap of {namespace}: {sorted(configmaps)}")
        configmaps[name][key] = content
    for name, data in configmaps.items():
        check_size(name, data)
    if os.path.exists(state_file(opts.state)):
        fail(f"{opts.state} holds a pod already: `kube-run.py delete --state {opts.state}` first")
    os.makedirs(opts.state, exist_ok=True)
    description, args = translate(objects, ds, os.path.abspath(opts.state), configmaps, secrets,
                                  opts.node_name or socket.gethostname())
    description["podman_run"] = args
    description["configmaps"] = {k: {kk: base64.b64encode(vv).decode() for kk, vv in v.items()}
                                 for k, v in configmaps.items()}
    if opts.dry_run:
        print(shlex.join(["scripts/podman.sh"] + args))
        shutil.rmtree(os.path.join(opts.state, "volumes"), ignore_errors=True)
        return
    if subprocess.run(PODMAN + ["image", "exists", description["image"]]).returncode != 0:
        fail(f"image {description['image']} is not in the local storage: build it with scripts/build-image.sh")
    with open(state_file(opts.state), "w") as f:
        json.dump(description, f, indent=1)
    description["container_id"] = podman(*args)
    if description["container_ports"] and "--network=host" not in args:
        mapping = podman("port", description["pod"])
        description["host_ports"] = {}
        for line in mapping.splitlines():
            m = re.fullmatch(r"(\d+)/\w+ -> [\d.]+:(\d+)", line.strip())
            if m:
                description["host_ports"][int(m.group(1))] = int(m.group(2))
    else:
        description["host_ports"] = {p: p for p in description["container_ports"].values()}
    for probe in description["probes"].values():
        # A container that exited at once has no published port left.
        port = description["host_ports"].get(probe["container_port"])
        probe["url"] = port and f"{probe['scheme']}://127.0.0.1:{port}{probe['path']}"
    with open(state_file(opts.state), "w") as f:
        json.dump(description, f, indent=1)
    print(json.dumps({k: v for k, v in description.items() if k != "configmaps"}, indent=1))


def cmd_update_configmap(opts):
    state = load_state(opts.state)
    if opts.name not in state["configmaps"]:
        fail(f"ConfigMap {opts.name} is not one of the pod's: {sorted(state['configmaps'])}")
    data = {k: base64.b64decode(v) for k, v in state["configmaps"][opts.name].items()}
    for key, content in parse_sets(opts.set, opts.set_file, "--set"):
        data[key] = content
    for key in opts.delete or []:
        data.pop(key, None)
    check_size(opts.name, data)
    state["configmaps"][opts.name] = {k: base64.b64encode(v).decode() for k, v in data.items()}
    # Every volume of that ConfigMap gets the new version (subPath mounts keep the old file).
    for vname, vol in state["volumes"].items():
        if vol["kind"] == "configMap" and vol["ref"] == opts.name:
            files, mode = volume_files(vol["source"], data, f"volume {vname}")
            publish(vol["dir"], files, mode)
    with open(state_file(opts.state), "w") as f:
        json.dump(state, f, indent=1)


def cmd_probe(opts):
    state = load_state(opts.state)
    ok = True
    for kind, probe in state["probes"].items():
        if not probe.get("url"):
            print(f"{kind}: no published port (has the container exited?) -> fail")
            ok = False
            continue
        try:
            with urllib.request.urlopen(probe["url"], timeout=1) as r:
                code = r.status
        except urllib.error.HTTPError as e:
            code = e.code
        except OSError as e:
            code = f"unreachable ({e})"
        passed = isinstance(code, int) and 200 <= code < 400
        ok &= passed
        print(f"{kind}: {probe['url']} -> {code} ({'pass' if passed else 'fail'})")
    sys.exit(0 if ok else 1)


def cmd_logs(opts):
    state = load_state(opts.state)
    sys.exit(subprocess.run(PODMAN + ["logs", state["pod"]]).returncode)


def cmd_delete(opts):
    try:
        state = load_state(opts.state)
        subprocess.run(PODMAN + ["rm", "--force", "--time", "15", state["pod"]], capture_output=True)
    except Error:
        pass
    shutil.rmtree(opts.state, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the DaemonSet's pod; prints it as JSON")
    run.add_argument("--manifests", default=os.path.join(ROOT, "deployments/kubernetes/manifests"))
    run.add_argument("--daemonset", help="its name, when the manifests hold several")
    run.add_argument("--state", required=True, help="directory for the pod's volumes and state")
    run.add_argument("--set", action="append", metavar="CONFIGMAP/KEY=VALUE",
                     help="override a ConfigMap value, as editing the ConfigMap would")
    run.add_argument("--set-file", action="append", metavar="CONFIGMAP/KEY=PATH")
    run.add_argument("--node-name", help="spec.nodeName (default: this host's name)")
    run.add_argument("--dry-run", action="store_true", help="print the podman command only")
    update = sub.add_parser("update-configmap", help="change a ConfigMap of the running pod")
    update.add_argument("--state", required=True)
    update.add_argument("name")
    update.add_argument("--set", action="append", metavar="KEY=VALUE")
    update.add_argument("--set-file", action="append", metavar="KEY=PATH")
    update.add_argument("--delete", action="append", metavar="KEY")
    for name, help_text in [("probe", "run the pod's HTTP probes once"), ("logs", "the container's log"),
                            ("delete", "remove the pod")]:
        sub.add_parser(name, help=help_text).add_argument("--state", required=True)
    opts = parser.parse_args()
    try:
        {"run": cmd_run, "update-configmap": cmd_update_configmap, "probe": cmd_probe,
         "logs": cmd_logs, "delete": cmd_delete}[opts.command](opts)
    except Error as e:
        sys.exit(f"kube-run.py: {e}")


if __name__ == "__main__":
    main()
