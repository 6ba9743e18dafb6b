//! Keeps the probes attached to exactly the selected processes: scans /proc, inspects new
//! executables (once per file), attaches, detaches from exited processes, and hands on the
//! events of handlers that panicked and never returned.
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_autoinstrument_common::HttpServerEvent;
use tokio::sync::mpsc;

use super::processes::ProcessTable;
use super::stats::AgentStats;
use crate::attach::{load_bias, Probes};
use crate::discover::{
    container_identity, listening_ports_by_pid, ContainerIdentity, Process, ProcessWatcher,
    Selector,
};
use crate::inspect::{inspect_bytes_guarded, GoBinary, InspectError};
use crate::span::{parse_environ, process_resource, Attribute, ProcessFacts, Resource, WallClock};

/// A handler that panicked and has not returned after this long is taken to have ended.
const PANIC_GRACE: Duration = Duration::from_secs(1);

/// Identity of an executable file: inspected once, whatever number of processes run it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        }
    }

    /// The file process `pid` runs now.
    fn of_process(pid: u32) -> Option<FileId> {
        std::fs::metadata(format!("/proc/{pid}/exe"))
            .ok()
            .map(|m| FileId::of(&m))
    }
}

/// An executable's inspection: what to attach where, or why it cannot be traced.
type Inspected = Result<Arc<GoBinary>, Arc<InspectError>>;

/// A process checked again for a selected port: soon after it started, then less and less often
/// (a node's long-running Go daemons that never listen on it cost a read of their namespace's
/// TCP table every few seconds, not every scan).
struct AwaitingPort {
    process: Process,
    next_check: Instant,
    wait: Duration,
}

/// The first wait before checking an unmatched process's ports again, doubled after each check.
const FIRST_PORT_RECHECK: Duration = Duration::from_millis(200);
/// The longest wait between two checks: how late a service that opens its port after a long
/// start-up may be noticed.
const MAX_PORT_RECHECK: Duration = Duration::from_secs(5);

/// Executables whose inspection is remembered at most.
const MAX_CACHED_BINARIES: usize = 4096;

pub struct Tracker {
    probes: Probes,
    selector: Selector,
    watcher: ProcessWatcher,
    binaries: HashMap<FileId, Inspected>,
    /// Go HTTP processes that no selector matched only because they do not listen on a selected
    /// port yet: a service opens its port after its start-up work (configuration, migrations,
    /// connections), often after the scan that saw it start.
    awaiting_port: HashMap<u32, AwaitingPort>,
    processes: ProcessTable,
    stats: Arc<AgentStats>,
    host_name: String,
    /// `k8s.node.name` for every resource, when configured.
    node_name: Option<String>,
    panicked_events: mpsc::Sender<HttpServerEvent>,
}

/// Adds `container.id`, `k8s.pod.uid` and `k8s.node.name`, unless the target's own
/// `OTEL_RESOURCE_ATTRIBUTES` already set them (what the service says about itself wins).
fn add_deployment_attributes(
    resource: &mut Resource,
    identity: &ContainerIdentity,
    node_name: Option<&str>,
) {
    for (key, value) in [
        ("container.id", identity.container_id.as_deref()),
        ("k8s.pod.uid", identity.pod_uid.as_deref()),
        ("k8s.node.name", node_name),
    ] {
        if let Some(value) = value {
            if resource.get(key).is_none() {
                resource
                    .attributes
                    .push(Attribute::new(key, value.to_owned()));
            }
        }
    }
}

/// Errors that only mean "not a target": not worth a warning when every process is scanned.
fn is_not_a_target(e: &InspectError) -> bool {
    matches!(
        e,
        InspectError::NotElf { .. }
            | InspectError::NotGo { .. }
            | InspectError::NoHttpServer { .. }
    )
}

impl Tracker {
    pub fn new(
        probes: Probes,
        selector: Selector,
        processes: ProcessTable,
        stats: Arc<AgentStats>,
        node_name: Option<String>,
        panicked_events: mpsc::Sender<HttpServerEvent>,
    ) -> Self {
        Tracker {
            probes,
            selector,
            watcher: ProcessWatcher::default(),
            binaries: HashMap::new(),
            awaiting_port: HashMap::new(),
            processes,
            stats,
            host_name: crate::span::host_name(),
            node_name,
            panicked_events,
        }
    }

    /// Runs scans every `interval` until `stop` is set, then detaches everything.
    pub fn run(mut self, interval: Duration, stop: &AtomicBool) {
        while !stop.load(Relaxed) {
            let started = Instant::now();
            self.scan();
            self.forward_abandoned_panics();
            self.publish_counters();
            AgentStats::add(&self.stats.scans_completed, 1);
            std::thread::sleep(interval.saturating_sub(started.elapsed()));
        }
        self.forward_abandoned_panics();
        *self.stats.kernel.lock().unwrap() = self.probes.counters();
        for pid in self.probes.attached_pids() {
            self.probes.detach(pid);
        }
    }

    fn publish_counters(&self) {
        *self.stats.kernel.lock().unwrap() = self.probes.counters();
        let stats = &self.stats;
        stats
            .processes_traced
            .store(self.probes.attached_pids().len() as u64, Relaxed);
        stats
            .probes_attached
            .store(self.probes.link_count() as u64, Relaxed);
    }

    fn scan(&mut self) {
        let probes = &self.probes;
        let diff = self.watcher.scan(|pid| probes.is_attached(pid));
        for exited in diff.exited {
            if self.probes.is_attached(exited.pid) {
                let unfinished_requests = self.probes.detach(exited.pid);
                tracing::info!(
                    pid = exited.pid,
                    unfinished_requests,
                    "process exited; probes detached"
                );
            }
            self.processes.mark_exited(exited.pid);
            if self
                .awaiting_port
                .get(&exited.pid)
                .is_some_and(|a| a.process.id == exited)
            {
                self.awaiting_port.remove(&exited.pid);
            }
        }
        let mut new_unmatched = Vec::new();
        for process in diff.started {
            if self.selector.matches(&process, None) {
                self.track(&process);
            } else if self.selector.needs_ports() {
                new_unmatched.push(process);
            }
        }
        let now = Instant::now();
        let due: Vec<u32> = (self.awaiting_port.iter())
            .filter(|(_, a)| a.next_check <= now)
            .map(|(pid, _)| *pid)
            .collect();
        if new_unmatched.is_empty() && due.is_empty() {
            return;
        }
        let pids: Vec<u32> = (new_unmatched.iter().map(|p| p.id.pid))
            .chain(due.iter().copied())
            .collect();
        let ports = listening_ports_by_pid(&pids, self.selector.ports());
        for pid in due {
            if ports.contains_key(&pid) {
                if let Some(waited) = self.awaiting_port.remove(&pid) {
                    tracing::debug!(pid, "now listens on a selected port");
                    self.track(&waited.process);
                }
            } else if let Some(waiting) = self.awaiting_port.get_mut(&pid) {
                waiting.wait = (waiting.wait * 2).min(MAX_PORT_RECHECK);
                waiting.next_check = now + waiting.wait;
            }
        }
        for process in new_unmatched {
            if ports.contains_key(&process.id.pid) {
                // Tracked, or told why not (e.g. a service on the port that is not Go).
                self.track(&process);
            } else if matches!(self.binary_of(process.id.pid), Some((_, Ok(_)))) {
                let awaiting = AwaitingPort {
                    process,
                    next_check: now + FIRST_PORT_RECHECK,
                    wait: FIRST_PORT_RECHECK,
                };
                self.awaiting_port.insert(awaiting.process.id.pid, awaiting);
            }
        }
    }

    /// What the program `pid` runs is, inspected once per file. Identity and contents come from
    /// one open of /proc/PID/exe, so they are of the same file even if the process execs meanwhile.
    /// `None` if the process is gone.
    fn binary_of(&mut self, pid: u32) -> Option<(FileId, Inspected)> {
        let exe = format!("/proc/{pid}/exe");
        let mut file = File::open(&exe).ok()?;
        let id = FileId::of(&file.metadata().ok()?);
        if let Some(known) = self.binaries.get(&id) {
            return Some((id, known.clone()));
        }
        // Failing to read means the process exited (its /proc entry went away): not cached, or
        // the next process of the same file would never be looked at.
        let mut data = Vec::new();
        file.read_to_end(&mut data).ok()?;
        let inspected = inspect_bytes_guarded(Path::new(&exe), &data)
            .map(Arc::new)
            .map_err(Arc::new);
        if self.binaries.len() >= MAX_CACHED_BINARIES {
            // Files whose processes are long gone (every build of a test binary, say): forgetting
            // them all costs one more inspection of the few still running.
            self.binaries.clear();
        }
        self.binaries.insert(id, inspected.clone());
        Some((id, inspected))
    }

    fn track(&mut self, process: &Process) {
        let pid = process.id.pid;
        let started = Instant::now();
        let (file_id, binary) = match self.binary_of(pid) {
            None => return, // exited meanwhile
            Some((id, Ok(binary))) => (id, binary),
            Some((_, Err(e))) => {
                if self.selector.selects_all() && is_not_a_target(&e) {
                    tracing::debug!(pid, "not traced: {e}");
                } else {
                    tracing::warn!(pid, executable = %process.executable.display(), "not traced: {e}");
                }
                return;
            }
        };
        let environ = std::fs::read(format!("/proc/{pid}/environ"))
            .map(|raw| parse_environ(&raw))
            .unwrap_or_default();
        let go_version = binary.go_version.to_string();
        let mut resource = process_resource(&ProcessFacts {
            pid,
            executable: &process.executable,
            go_version: &go_version,
            host_name: &self.host_name,
            environ: &environ,
        });
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        add_deployment_attributes(
            &mut resource,
            &container_identity(&cgroup),
            self.node_name.as_deref(),
        );
        let service = resource.service_name().to_owned();
        // Probes go at this file's offsets into whatever /proc/PID/exe is when they are attached:
        // a process that exec'd another program since it was inspected must not get them.
        if FileId::of_process(pid) != Some(file_id) {
            tracing::info!(
                pid,
                "not traced: it started another program while being inspected"
            );
            return;
        }
        self.processes.insert(pid, resource);
        let attached = load_bias(pid, &binary, file_id.ino)
            .and_then(|bias| self.probes.attach(pid, &binary, bias));
        match attached {
            Ok(()) => {
                AgentStats::add(&self.stats.processes_attached, 1);
                tracing::info!(
                    pid,
                    service = %service,
                    executable = %process.executable.display(),
                    go = %go_version,
                    request_end = %binary.request_end,
                    attach_ms = started.elapsed().as_secs_f64() * 1e3,
                    "tracing"
                );
                if binary.offsets.response_itab == http_autoinstrument_common::ABSENT {
                    tracing::warn!(
                        pid,
                        go = %go_version,
                        "its HTTP/1 spans will have no status code: the type of net/http's response \
                         writer was not found in the binary (`http-autoinstrument inspect` shows \
                         what was); please report it"
                    );
                }
            }
            Err(e) => {
                AgentStats::add(&self.stats.attach_failures, 1);
                self.processes.mark_exited(pid);
                tracing::error!(pid, executable = %process.executable.display(), "could not attach: {e:#}");
            }
        }
    }

    fn forward_abandoned_panics(&mut self) {
        let now = WallClock::now_monotonic_ns();
        for event in self
            .probes
            .take_abandoned_panics(now, PANIC_GRACE.as_nanos() as u64)
        {
            if self.panicked_events.try_send(event).is_err() {
                tracing::warn!("span stage is not keeping up; dropped a panicked request's span");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_attributes_do_not_override_the_targets_own() {
        let mut resource = Resource {
            attributes: vec![Attribute::new("k8s.node.name", "from-the-service")],
        };
        let identity = ContainerIdentity {
            container_id: Some("c".repeat(64)),
            pod_uid: None,
        };
        add_deployment_attributes(&mut resource, &identity, Some("node-1"));
        assert_eq!(
            resource.get("k8s.node.name"),
            Some(&"from-the-service".into())
        );
        assert_eq!(resource.get("container.id"), Some(&"c".repeat(64).into()));
        assert_eq!(resource.get("k8s.pod.uid"), None);
    }
}
