//! The resource of a traced process: who produced its spans.
//!
//! `service.name` comes from the target's own `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`
//! (read from /proc/PID/environ) so a service configured for an OTel SDK keeps its name; otherwise
//! it is the executable's name, as Beyla and the OTel SDKs do. [`read_process_resource`] is
//! the one place a traced process's resource is made.
use std::path::Path;

use super::{Attribute, AttributeValue, Resource};
use crate::discover::container_identity;

pub const AGENT_NAME: &str = "http-autoinstrument";
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every resource of this agent shares.
#[derive(Clone, Debug, Default)]
pub struct HostFacts {
    pub host_name: String,
    /// `k8s.node.name`, when configured.
    pub node_name: Option<String>,
}

/// The resource of `pid`, from its environment and cgroup in /proc (empty once it has exited)
/// and what the agent knows of its executable: `None` when nothing is known of it.
pub fn read_process_resource(
    pid: u32,
    executable: Option<&Path>,
    go_version: &str,
    host: &HostFacts,
) -> Resource {
    let environ = std::fs::read(format!("/proc/{pid}/environ"))
        .map(|raw| parse_environ(&raw))
        .unwrap_or_default();
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let identity = container_identity(&cgroup);
    process_resource(&ProcessFacts {
        pid,
        executable,
        go_version,
        host_name: &host.host_name,
        environ: &environ,
        container_id: identity.container_id.as_deref(),
        pod_uid: identity.pod_uid.as_deref(),
        node_name: host.node_name.as_deref(),
    })
}

/// What the agent knows about a traced process.
#[derive(Clone, Debug, Default)]
pub struct ProcessFacts<'a> {
    pub pid: u32,
    /// `None`: an event came from a process whose executable the agent does not know.
    pub executable: Option<&'a Path>,
    pub go_version: &'a str,
    pub host_name: &'a str,
    /// The process's environment (`KEY=value` entries).
    pub environ: &'a [(String, String)],
    /// From its cgroup, when it runs in a container (see `discover::container_identity`).
    pub container_id: Option<&'a str>,
    pub pod_uid: Option<&'a str>,
    /// `k8s.node.name`, when configured.
    pub node_name: Option<&'a str>,
}

/// Parses `/proc/PID/environ` (NUL-separated `KEY=value`).
pub fn parse_environ(raw: &[u8]) -> Vec<(String, String)> {
    raw.split(|&b| b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (k, v) = entry.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// Parses `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, values percent-decoded). Malformed entries
/// are skipped, as the OTel SDK specification asks.
pub fn parse_resource_attributes(raw: &str) -> Vec<(String, String)> {
    raw.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_owned(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn process_resource(facts: &ProcessFacts<'_>) -> Resource {
    let env = |key: &str| {
        facts
            .environ
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    };
    let from_env = env("OTEL_RESOURCE_ATTRIBUTES")
        .map(parse_resource_attributes)
        .unwrap_or_default();
    let executable_name = facts
        .executable
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned());
    let service_name = env("OTEL_SERVICE_NAME")
        .map(str::to_owned)
        .or_else(|| {
            from_env
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
        })
        .or_else(|| executable_name.clone())
        // The OTel SDKs' name for a service that has none.
        .unwrap_or_else(|| "unknown_service".to_owned());

    let mut attributes = vec![Attribute::new("service.name", service_name)];
    for (k, v) in &from_env {
        if k != "service.name" {
            attributes.push(Attribute::new(k.clone(), v.clone()));
        }
    }
    let mut ours: Vec<(&str, AttributeValue)> = vec![("process.pid", i64::from(facts.pid).into())];
    if let (Some(path), Some(name)) = (facts.executable, executable_name) {
        ours.extend([
            (
                "process.executable.path",
                path.to_string_lossy().into_owned().into(),
            ),
            ("process.executable.name", name.into()),
            ("process.runtime.name", "go".into()),
            (
                "process.runtime.version",
                facts.go_version.to_owned().into(),
            ),
        ]);
    }
    ours.extend([
        ("host.name", facts.host_name.to_owned().into()),
        ("telemetry.sdk.name", AGENT_NAME.into()),
        ("telemetry.sdk.language", "go".into()),
        ("telemetry.sdk.version", AGENT_VERSION.into()),
        ("telemetry.distro.name", AGENT_NAME.into()),
        ("telemetry.distro.version", AGENT_VERSION.into()),
    ]);
    for (k, v) in ours {
        // What the agent observes wins over what the environment claims.
        attributes.retain(|a| a.key != k);
        attributes.push(Attribute {
            key: k.into(),
            value: v,
        });
    }
    // Where it is deployed: what the service says about itself wins here (a pod may set its own
    // `k8s.node.name`, say).
    for (key, value) in [
        ("container.id", facts.container_id),
        ("k8s.pod.uid", facts.pod_uid),
        ("k8s.node.name", facts.node_name),
    ] {
        if let Some(value) = value {
            if !attributes.iter().any(|a| a.key == key) {
                attributes.push(Attribute::new(key, value.to_owned()));
            }
        }
    }
    Resource { attributes }
}

/// This machine's host name.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if ok {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(environ: &'a [(String, String)]) -> ProcessFacts<'a> {
        ProcessFacts {
            pid: 7,
            executable: Some(Path::new("/srv/bin/checkout")),
            go_version: "go1.24.11",
            host_name: "node-1",
            environ,
            ..ProcessFacts::default()
        }
    }

    #[test]
    fn deployment_attributes_do_not_override_the_targets_own() {
        let env = kv(&[("OTEL_RESOURCE_ATTRIBUTES", "k8s.node.name=from-the-service")]);
        let container = "c".repeat(64);
        let r = process_resource(&ProcessFacts {
            container_id: Some(&container),
            node_name: Some("node-1"),
            ..facts(&env)
        });
        assert_eq!(r.get("k8s.node.name"), Some(&"from-the-service".into()));
        assert_eq!(r.get("container.id"), Some(&container.clone().into()));
        assert_eq!(r.get("k8s.pod.uid"), None);
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn service_name_falls_back_to_the_executable() {
        let r = process_resource(&facts(&[]));
        assert_eq!(r.service_name(), "checkout");
        assert_eq!(r.get("process.pid"), Some(&AttributeValue::Int(7)));
        assert_eq!(r.get("telemetry.sdk.name"), Some(&AGENT_NAME.into()));
        assert_eq!(r.get("host.name"), Some(&"node-1".into()));
    }

    #[test]
    fn otel_service_name_beats_resource_attributes() {
        let env = kv(&[
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=a,deployment.environment=prod%20eu",
            ),
            ("OTEL_SERVICE_NAME", "b"),
        ]);
        let r = process_resource(&facts(&env));
        assert_eq!(r.service_name(), "b");
        assert_eq!(r.get("deployment.environment"), Some(&"prod eu".into()));
        let env = kv(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=a, bad ,process.pid=1",
        )]);
        let r = process_resource(&facts(&env));
        assert_eq!(r.service_name(), "a");
        assert_eq!(r.get("process.pid"), Some(&AttributeValue::Int(7)));
        assert_eq!(
            r.attributes
                .iter()
                .filter(|a| a.key == "process.pid")
                .count(),
            1
        );
    }

    #[test]
    fn a_process_of_an_unknown_executable_is_an_unknown_service() {
        let r = process_resource(&ProcessFacts {
            executable: None,
            ..facts(&[])
        });
        assert_eq!(r.service_name(), "unknown_service");
        assert_eq!(r.get("process.pid"), Some(&AttributeValue::Int(7)));
        assert_eq!(r.get("process.executable.path"), None);
        assert_eq!(r.get("host.name"), Some(&"node-1".into()));
    }

    #[test]
    fn parses_environ_blocks() {
        let env = parse_environ(b"A=1\0OTEL_SERVICE_NAME=x=y\0junk\0\0");
        assert_eq!(env, kv(&[("A", "1"), ("OTEL_SERVICE_NAME", "x=y")]));
    }

    #[test]
    fn percent_decoding_leaves_bad_escapes_alone() {
        assert_eq!(percent_decode("a%2Cb%zz%4"), "a,b%zz%4");
    }
}
