//! The traced processes the span stage needs to know about: their resources, by pid (made by
//! `span::read_process_resource`).
//!
//! A process is usually known before its first event (the tracker registers it when a scan finds
//! it), but a replica or a restart of an executable whose probes are already attached can serve
//! requests before the next scan: its resource is then made from /proc when its first event
//! arrives, and from what the agent knows of its executable when it has already exited.
//!
//! An exited process stays known for a grace period, because its last events can still be in the
//! ring buffer when the scan notices the exit.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub use crate::span::HostFacts;
use crate::span::{read_process_resource, Resource};

const EXITED_GRACE: Duration = Duration::from_secs(10);

/// What the agent knows of a traced executable, by the slot its probes report.
#[derive(Clone, Debug)]
pub struct ExecutableFacts {
    pub path: PathBuf,
    pub go_version: String,
    /// `error` type names by itab address (see `GoBinary::error_types`).
    pub error_types: Arc<HashMap<u64, String>>,
}

#[derive(Default)]
struct Table {
    live: HashMap<u32, Arc<Resource>>,
    exited: HashMap<u32, (Arc<Resource>, Instant)>,
    executables: HashMap<u32, ExecutableFacts>,
}

#[derive(Clone, Default)]
pub struct ProcessTable {
    inner: Arc<RwLock<Table>>,
    host: Arc<HostFacts>,
}

impl ProcessTable {
    pub fn new(host: HostFacts) -> Self {
        ProcessTable {
            inner: Arc::default(),
            host: Arc::new(host),
        }
    }

    /// Remembers what the probes of `slot` are attached to.
    pub fn set_executable(&self, slot: u32, facts: ExecutableFacts) {
        self.inner.write().unwrap().executables.insert(slot, facts);
    }

    /// Registers `pid`, which runs `executable` (the path as it sees it) built with `go_version`,
    /// reading its environment and cgroup; returns its resource.
    pub fn track(&self, pid: u32, executable: &Path, go_version: &str) -> Arc<Resource> {
        let resource = Arc::new(self.read_resource(pid, executable, go_version));
        let mut t = self.inner.write().unwrap();
        t.exited.remove(&pid);
        t.live.insert(pid, resource.clone());
        resource
    }

    fn read_resource(&self, pid: u32, executable: &Path, go_version: &str) -> Resource {
        read_process_resource(pid, Some(executable), go_version, &self.host)
    }

    pub fn mark_exited(&self, pid: u32) {
        let mut t = self.inner.write().unwrap();
        if let Some(r) = t.live.remove(&pid) {
            t.exited.insert(pid, (r, Instant::now()));
        }
        t.exited.retain(|_, (_, at)| at.elapsed() < EXITED_GRACE);
    }

    /// Marks exited every known process for which `is_running` is false: processes that came
    /// and went between two scans were only ever seen through their events.
    pub fn sweep(&self, is_running: impl Fn(u32) -> bool) {
        let gone: Vec<u32> = (self.inner.read().unwrap().live.keys())
            .copied()
            .filter(|&pid| !is_running(pid))
            .collect();
        for pid in gone {
            self.mark_exited(pid);
        }
    }

    /// The resource of `pid`, whose event came from the probes of executable `slot`.
    pub fn resource(&self, pid: u32, slot: u32) -> Arc<Resource> {
        let executable = {
            let t = self.inner.read().unwrap();
            if let Some(r) = t
                .live
                .get(&pid)
                .or_else(|| t.exited.get(&pid).map(|(r, _)| r))
            {
                return r.clone();
            }
            t.executables.get(&slot).cloned()
        };
        let Some(executable) = executable else {
            return Arc::new(read_process_resource(pid, None, "", &self.host));
        };
        // Seen first through its events. /proc tells the path as the process sees it (inside its
        // container); once it has exited, the path the agent opened it by is all there is.
        let seen_as = std::fs::read_link(format!("/proc/{pid}/exe"));
        let running = seen_as.is_ok();
        let path = seen_as.unwrap_or(executable.path);
        let resource = Arc::new(self.read_resource(pid, &path, &executable.go_version));
        let mut t = self.inner.write().unwrap();
        if running {
            t.live.insert(pid, resource.clone());
        } else {
            t.exited.insert(pid, (resource.clone(), Instant::now()));
        }
        resource
    }

    /// The name of the error type whose itab is at `itab` in the executable of `slot`.
    pub fn error_type(&self, slot: u32, itab: u64) -> Option<String> {
        let t = self.inner.read().unwrap();
        t.executables.get(&slot)?.error_types.get(&itab).cloned()
    }

    pub fn live_count(&self) -> usize {
        self.inner.read().unwrap().live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exited_processes_keep_their_resource_for_late_events() {
        let table = ProcessTable::default();
        let pid = std::process::id();
        let resource = table.track(pid, Path::new("/srv/shop"), "go1.24.11");
        assert_eq!(resource.service_name(), "shop");
        table.mark_exited(pid);
        assert_eq!(table.resource(pid, 0).service_name(), "shop");
        assert_eq!(table.live_count(), 0);
        assert_eq!(
            table.resource(u32::MAX, 0).service_name(),
            "unknown_service"
        );
    }

    #[test]
    fn a_process_first_seen_through_its_events_gets_a_full_resource() {
        let table = ProcessTable::new(HostFacts {
            host_name: "node-1".into(),
            node_name: Some("node-1".into()),
        });
        table.set_executable(
            3,
            ExecutableFacts {
                path: "/srv/checkout".into(),
                go_version: "go1.26.6".into(),
                error_types: Arc::new(HashMap::from([(0x77, "*net.OpError".to_string())])),
            },
        );
        // A process that exited before the agent looked: what its executable says.
        let gone = u32::MAX - 1;
        let resource = table.resource(gone, 3);
        assert_eq!(resource.service_name(), "checkout");
        assert_eq!(
            resource.get("process.runtime.version"),
            Some(&"go1.26.6".into())
        );
        assert_eq!(resource.get("k8s.node.name"), Some(&"node-1".into()));
        assert_eq!(table.live_count(), 0);
        // A running one: its own path and environment, kept as live.
        let me = std::process::id();
        let resource = table.resource(me, 3);
        assert_eq!(resource.get("process.pid"), Some(&i64::from(me).into()),);
        assert_eq!(table.live_count(), 1);
        assert_eq!(table.error_type(3, 0x77).as_deref(), Some("*net.OpError"));
        assert_eq!(table.error_type(3, 0x78), None);
        table.sweep(|_| false);
        assert_eq!(table.live_count(), 0);
    }
}
