//! Which container and Kubernetes pod a process runs in, from its `/proc/PID/cgroup`.
//!
//! The runtimes name the cgroup after the container, and the kubelet names the pod's cgroup
//! after the pod UID, in either cgroup driver's layout:
//! - cgroupfs: `/kubepods/burstable/pod<uid>/<container-id>`
//! - systemd: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with _>.slice/
//!   cri-containerd-<container-id>.scope` (also `crio-`, `docker-`)
//! - plain Docker: `/docker/<container-id>` or `/system.slice/docker-<container-id>.scope`

/// What the cgroup path says; either part may be missing (a process outside containers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerIdentity {
    /// The 64-hex-digit container id.
    pub container_id: Option<String>,
    /// The pod UID in its usual dashed form.
    pub pod_uid: Option<String>,
}

/// Parses the contents of `/proc/PID/cgroup` (v1 or v2).
pub fn container_identity(cgroup_file: &str) -> ContainerIdentity {
    let mut identity = ContainerIdentity::default();
    for line in cgroup_file.lines() {
        // hierarchy-id:controllers:path
        let Some(path) = line.splitn(3, ':').nth(2) else {
            continue;
        };
        for segment in path.split('/') {
            if identity.container_id.is_none() {
                identity.container_id = container_id(segment);
            }
            if identity.pod_uid.is_none() {
                identity.pod_uid = pod_uid(segment);
            }
        }
    }
    identity
}

/// A container id: 64 hex digits, alone or as `<runtime>-<id>.scope`.
fn container_id(segment: &str) -> Option<String> {
    let segment = segment.strip_suffix(".scope").unwrap_or(segment);
    let id = segment.rsplit('-').next()?;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_owned())
}

/// A pod UID from `pod<uid>` or `kubepods-<qos>-pod<uid_with_underscores>.slice`.
fn pod_uid(segment: &str) -> Option<String> {
    let segment = segment.strip_suffix(".slice").unwrap_or(segment);
    let start = segment.rfind("pod")? + 3;
    let uid = segment[start..].replace('_', "-");
    let dashes: Vec<usize> = uid.split('-').map(str::len).collect();
    (dashes == [8, 4, 4, 4, 12] && uid.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()))
        .then_some(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "3e1b5c9f0a2d4e6f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e3f";
    const UID: &str = "6a1f2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b";

    #[test]
    fn systemd_driver_with_containerd() {
        let file = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID}.scope\n",
            UID.replace('-', "_")
        );
        let id = container_identity(&file);
        assert_eq!(id.container_id.as_deref(), Some(CID));
        assert_eq!(id.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn cgroupfs_driver_v1_lines() {
        let file = format!(
            "12:pids:/kubepods/besteffort/pod{UID}/{CID}\n11:memory:/kubepods/besteffort/pod{UID}/{CID}\n"
        );
        let id = container_identity(&file);
        assert_eq!(id.container_id.as_deref(), Some(CID));
        assert_eq!(id.pod_uid.as_deref(), Some(UID));
    }

    #[test]
    fn docker_without_kubernetes_has_no_pod() {
        let id = container_identity(&format!("0::/system.slice/docker-{CID}.scope\n"));
        assert_eq!(id.container_id.as_deref(), Some(CID));
        assert_eq!(id.pod_uid, None);
    }

    #[test]
    fn a_host_process_has_neither() {
        let id = container_identity("0::/user.slice/user-0.slice/session-3.scope\n");
        assert_eq!(id, ContainerIdentity::default());
        assert_eq!(container_identity(""), ContainerIdentity::default());
    }
}
