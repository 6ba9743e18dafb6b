//! The shipped deployment files agree with the agent: their configuration passes the agent's own
//! check, and the DaemonSet probes the endpoints the agent serves, with the capabilities it needs
//! and without privileged mode. (Schema validation and linting: scripts/validate-manifests.sh.)
use std::path::{Path, PathBuf};

use http_autoinstrument::{capabilities, config};
use serde_norway::Value;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Every document of a multi-document YAML file.
fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_file(path)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

fn get<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(value, |v, key| match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[key],
        })
}

#[test]
fn the_example_configuration_passes_the_agents_check() {
    let path = repo_file("deployments/config.example.yaml");
    config::check_file(&path).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_daemonsets_configuration_passes_the_agents_check_and_serves_health() {
    let configmap = &documents("deployments/kubernetes/manifests/10-agent-config.yaml")[0];
    let text = configmap["data"]["config.yaml"].as_str().unwrap();
    let config = config::check_text(Path::new("10-agent-config.yaml:data.config.yaml"), text)
        .unwrap_or_else(|e| panic!("{e}"));
    let address = config.telemetry.metrics_address.expect("metrics served");
    assert!(
        address.ip().is_unspecified(),
        "reachable by the kubelet's probes"
    );
    assert_eq!(
        config.plugins.dir.as_deref(),
        Some(Path::new("/etc/http-autoinstrument/plugins"))
    );

    let daemonset = documents("deployments/kubernetes/manifests/20-agent-daemonset.yaml")
        .into_iter()
        .find(|d| d["kind"] == "DaemonSet")
        .unwrap();
    let pod = get(&daemonset, "spec.template.spec");
    assert_eq!(pod["hostPID"], Value::Bool(true));
    let agent = &pod["containers"][0];
    let port = agent["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(port, u64::from(address.port()));
    assert_eq!(get(agent, "livenessProbe.httpGet.path"), "/healthz");
    assert_eq!(get(agent, "readinessProbe.httpGet.path"), "/readyz");
    let security = &agent["securityContext"];
    assert_eq!(security["privileged"], Value::Bool(false));
    assert_eq!(security["readOnlyRootFilesystem"], Value::Bool(true));
    let added: Vec<&str> = get(security, "capabilities.add")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    // What the agent checks at start, and CAP_SYS_RESOURCE for kernels before 5.11.
    for needed in capabilities::REQUIRED
        .iter()
        .chain([&capabilities::CAP_SYS_RESOURCE])
    {
        assert!(
            added.contains(&needed.name),
            "{} missing from {added:?}",
            needed.name
        );
    }
    assert_eq!(
        added.len(),
        capabilities::REQUIRED.len() + 1,
        "no capability the agent does not check for: {added:?}"
    );
    assert_eq!(get(security, "capabilities.drop.0"), "ALL");
    // The tag scripts/build-image.sh gives the image it builds.
    assert_eq!(
        agent["image"],
        format!("http-autoinstrument:{}", env!("CARGO_PKG_VERSION")).as_str()
    );
    let env = agent["env"].as_sequence().unwrap();
    let node = env
        .iter()
        .find(|e| e["name"] == "HTTP_AUTOINSTRUMENT_NODE_NAME")
        .expect("node name from the downward API");
    assert_eq!(get(node, "valueFrom.fieldRef.fieldPath"), "spec.nodeName");
    // The plugins volume must not be a subPath mount: those never see ConfigMap updates.
    let plugins_mount = agent["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "plugins")
        .unwrap();
    assert_eq!(plugins_mount["subPath"], Value::Null);
}

/// The image's build stage copies only some of the repository: it must copy every workspace
/// member (cargo reads them all) and the cargo configuration, or `docker build` fails.
#[test]
fn the_dockerfile_copies_everything_the_workspace_build_reads() {
    let dockerfile = std::fs::read_to_string(repo_file("Dockerfile")).unwrap();
    // Every stage but the runtime (the last) and what precedes the first FROM.
    let stages: Vec<&str> = dockerfile.split("\nFROM ").skip(1).collect();
    let (_runtime, build_stages) = stages.split_last().expect("a multi-stage Dockerfile");
    assert!(!build_stages.is_empty(), "a multi-stage Dockerfile");
    let copied: Vec<&str> = build_stages
        .iter()
        .flat_map(|stage| stage.lines())
        .filter_map(|l| l.strip_prefix("COPY "))
        .flat_map(|l| l.split_whitespace().filter(|w| !w.starts_with("--")))
        .collect();
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo_file("Cargo.toml")).unwrap()).unwrap();
    let members = manifest["workspace"]["members"].as_array().unwrap();
    assert!(!members.is_empty());
    for member in members {
        let member = member.as_str().unwrap();
        assert!(
            copied
                .iter()
                .any(|c| member == *c || member.starts_with(&format!("{c}/"))),
            "the Dockerfile's build stage does not COPY workspace member {member}: {copied:?}"
        );
    }
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        ".cargo",
        "scripts/build-ebpf.sh",
        // Read by the plugin host's bindgen! at compile time.
        "wit",
    ] {
        assert!(
            copied.contains(&needed),
            "the Dockerfile's build stage does not COPY {needed}"
        );
    }
}

/// The systemd unit grants exactly what the agent checks for at start (and CAP_SYS_RESOURCE for
/// kernels before 5.11), to the bounding and the ambient set alike. (systemd-analyze verify runs
/// in scripts/validate-manifests.sh.)
#[test]
fn the_systemd_unit_grants_the_capabilities_the_agent_checks_for() {
    let unit =
        std::fs::read_to_string(repo_file("deployments/systemd/http-autoinstrument.service"))
            .unwrap();
    let mut expected: Vec<String> = capabilities::REQUIRED
        .iter()
        .chain([&capabilities::CAP_SYS_RESOURCE])
        .map(|c| format!("CAP_{}", c.name))
        .collect();
    expected.sort();
    for key in ["CapabilityBoundingSet=", "AmbientCapabilities="] {
        let mut granted: Vec<String> = unit
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in the unit"))
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        granted.sort();
        assert_eq!(granted, expected, "{key}");
    }
}
