//! Keeps the probes attached to exactly the selected processes: scans /proc, inspects new
//! executables (once per file), attaches (once per file for a selected executable, per process
//! for a selected process), releases what exited, and hands on the events of handlers that
//! panicked and never returned.
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_autoinstrument_common::HttpServerEvent;
use tokio::sync::mpsc;

use super::processes::{ExecutableFacts, ProcessTable};
use super::stats::AgentStats;
use crate::attach::{Attachment, Probes, Scope};
use crate::discover::{listening_ports_by_pid, Process, ProcessWatcher, Selector};
use crate::inspect::{inspect_bytes_guarded, GoBinary, InspectError};
use crate::span::WallClock;

/// A handler that panicked and has not returned after this long is taken to have ended.
const PANIC_GRACE: Duration = Duration::from_secs(1);

/// How long an executable's probes stay attached after the last of its processes exited, so that
/// its restart (a crash-looping pod waits up to five minutes) is traced from its first request.
const KEEP_ATTACHED: Duration = Duration::from_secs(600);

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
}

/// An executable's inspection: what to attach where, or why it cannot be traced.
type Inspected = Result<Arc<GoBinary>, Arc<InspectError>>;

/// An executable with probes attached, and its traced processes.
struct TracedExecutable {
    slot: u32,
    binary: Arc<GoBinary>,
    /// Attached for every process that runs the file, present and future.
    whole_file: Option<Attachment>,
    /// The traced processes running it, each with an attachment of its own unless the file is
    /// attached whole.
    processes: HashMap<u32, Option<Attachment>>,
    /// Since when no traced process runs it.
    idle_since: Option<Instant>,
}

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

/// How long a selector may match nothing before the agent says so (once), with the Go services
/// it could trace: a user who got the glob wrong would otherwise see nothing at all.
const SELECTOR_GRACE: Duration = Duration::from_secs(3);
/// The Go services named in that message at most.
const MAX_LISTED_CANDIDATES: usize = 10;

/// Executables read at most to find them (each is read whole, once).
const MAX_INSPECTED_FOR_HINT: usize = 200;

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
    executables: HashMap<FileId, TracedExecutable>,
    /// The traced processes and the executable each runs.
    traced: HashMap<u32, FileId>,
    processes: ProcessTable,
    stats: Arc<AgentStats>,
    panicked_events: mpsc::Sender<HttpServerEvent>,
    /// When the tracker started, until the selector has matched or the user was told it did not.
    unmatched_since: Option<Instant>,
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
        panicked_events: mpsc::Sender<HttpServerEvent>,
    ) -> Self {
        Tracker {
            probes,
            selector,
            watcher: ProcessWatcher::default(),
            binaries: HashMap::new(),
            awaiting_port: HashMap::new(),
            executables: HashMap::new(),
            traced: HashMap::new(),
            processes,
            stats,
            panicked_events,
            unmatched_since: Some(Instant::now()),
        }
    }

    /// Runs scans every `interval` until `stop` is set, then detaches everything.
    pub fn run(mut self, interval: Duration, stop: &AtomicBool) {
        while !stop.load(Relaxed) {
            let started = Instant::now();
            self.scan();
            self.tell_if_nothing_matches();
            self.release_idle_executables();
            self.forward_abandoned_panics();
            self.publish_counters();
            AgentStats::add(&self.stats.scans_completed, 1);
            std::thread::sleep(interval.saturating_sub(started.elapsed()));
        }
        self.forward_abandoned_panics();
        *self.stats.kernel.lock().unwrap() = self.probes.counters();
        for (_, executable) in self.executables.drain() {
            release_executable(&mut self.probes, executable);
        }
    }

    /// Once, when the selector has matched no process for [`SELECTOR_GRACE`]: a warning naming
    /// the Go services it could trace and how to select them.
    fn tell_if_nothing_matches(&mut self) {
        let Some(since) = self.unmatched_since else {
            return;
        };
        if self.selector.selects_all() || !self.traced.is_empty() {
            self.unmatched_since = None;
            return;
        }
        if since.elapsed() < SELECTOR_GRACE {
            return;
        }
        self.unmatched_since = None;
        let mut seen = std::collections::HashSet::new();
        let processes: Vec<(u32, PathBuf)> = (self.watcher.processes())
            .map(|(pid, path)| (pid, path.to_owned()))
            .collect();
        let mut candidates = Vec::new();
        for (pid, path) in processes {
            if candidates.len() == MAX_LISTED_CANDIDATES || seen.len() == MAX_INSPECTED_FOR_HINT {
                break;
            }
            if !seen.insert(path.clone()) {
                continue;
            }
            if matches!(self.binary_of(pid), Some((_, _, Ok(_)))) {
                candidates.push(path);
            }
        }
        candidates.sort();
        tracing::warn!("{}", self.selector.unmatched_hint(&candidates));
    }

    fn publish_counters(&self) {
        *self.stats.kernel.lock().unwrap() = self.probes.counters();
        let stats = &self.stats;
        stats
            .processes_traced
            .store(self.traced.len() as u64, Relaxed);
        stats
            .probes_attached
            .store(self.probes.link_count() as u64, Relaxed);
        stats
            .executables_attached
            .store(self.executables.len() as u64, Relaxed);
    }

    fn scan(&mut self) {
        let traced = &self.traced;
        let diff = self.watcher.scan(|pid| traced.contains_key(&pid));
        for exited in diff.exited {
            self.forget(exited.pid);
            self.processes.mark_exited(exited.pid);
            if self
                .awaiting_port
                .get(&exited.pid)
                .is_some_and(|a| a.process.id == exited)
            {
                self.awaiting_port.remove(&exited.pid);
            }
        }
        let watcher = &self.watcher;
        self.processes.sweep(|pid| watcher.knows(pid));
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
            } else if matches!(self.binary_of(process.id.pid), Some((_, _, Ok(_)))) {
                let awaiting = AwaitingPort {
                    process,
                    next_check: now + FIRST_PORT_RECHECK,
                    wait: FIRST_PORT_RECHECK,
                };
                self.awaiting_port.insert(awaiting.process.id.pid, awaiting);
            }
        }
    }

    /// What the program `pid` runs is, inspected once per file, with the file open. Identity
    /// and contents come from one open of /proc/PID/exe, so they are of the same file even if the
    /// process execs meanwhile. `None` if the process is gone.
    fn binary_of(&mut self, pid: u32) -> Option<(FileId, File, Inspected)> {
        let exe = format!("/proc/{pid}/exe");
        let mut file = File::open(&exe).ok()?;
        let id = FileId::of(&file.metadata().ok()?);
        if let Some(known) = self.binaries.get(&id) {
            return Some((id, file, known.clone()));
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
        Some((id, file, inspected))
    }

    fn track(&mut self, process: &Process) {
        let pid = process.id.pid;
        if self.traced.contains_key(&pid) {
            return;
        }
        let started = Instant::now();
        let (file_id, file, binary) = match self.binary_of(pid) {
            None => return, // exited meanwhile
            Some((id, file, Ok(binary))) => (id, file, binary),
            Some((_, _, Err(e))) => {
                if self.selector.selects_all() && is_not_a_target(&e) {
                    tracing::debug!(pid, "not traced: {e}");
                } else {
                    tracing::warn!(pid, executable = %process.executable.display(), "not traced: {e}");
                }
                return;
            }
        };
        let whole_file = self.selector.selects_executable(process);
        // Attached through the descriptor the inspection read: the very file, whatever the
        // process runs by now.
        let target = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        let resource =
            self.processes
                .track(pid, &process.executable, &binary.go_version.to_string());
        let attached = self.attach(file_id, &binary, &target, process, whole_file);
        drop(file);
        match attached {
            Ok(newly_attached) => {
                self.traced.insert(pid, file_id);
                AgentStats::add(&self.stats.processes_attached, 1);
                tracing::info!(
                    pid,
                    service = %resource.service_name(),
                    executable = %process.executable.display(),
                    go = %binary.go_version,
                    probes = if newly_attached { "attached" } else { "already attached to its executable" },
                    request_end = %binary.request_end,
                    attach_ms = started.elapsed().as_secs_f64() * 1e3,
                    "tracing"
                );
                if newly_attached
                    && binary.offsets.response_itab == http_autoinstrument_common::ABSENT
                {
                    tracing::warn!(
                        pid,
                        go = %binary.go_version,
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

    /// Makes sure `pid`'s requests are probed: through its executable's whole-file attachment
    /// (made now if `whole_file` and not yet there), or one of its own. `Ok(true)` when probes
    /// were attached for it, `Ok(false)` when those of its executable already serve it.
    fn attach(
        &mut self,
        file_id: FileId,
        binary: &Arc<GoBinary>,
        target: &Path,
        process: &Process,
        whole_file: bool,
    ) -> anyhow::Result<bool> {
        let pid = process.id.pid;
        if !self.executables.contains_key(&file_id) {
            let slot = self.probes.configure(binary)?;
            // The path as the first process runs it: what names the processes that exit before
            // a scan sees them.
            self.processes.set_executable(
                slot,
                ExecutableFacts {
                    path: process.executable.clone(),
                    go_version: binary.go_version.to_string(),
                    error_types: Arc::new(binary.error_types.clone()),
                },
            );
            self.executables.insert(
                file_id,
                TracedExecutable {
                    slot,
                    binary: binary.clone(),
                    whole_file: None,
                    processes: HashMap::new(),
                    idle_since: None,
                },
            );
        }
        let executable = self.executables.get_mut(&file_id).expect("inserted above");
        executable.idle_since = None;
        let mut newly_attached = false;
        if whole_file && executable.whole_file.is_none() {
            let attachment = self.probes.attach(
                executable.slot,
                &executable.binary,
                target,
                Scope::WholeFile,
            )?;
            executable.whole_file = Some(attachment);
            newly_attached = true;
            // Its processes' own probes would now fire twice.
            for own in executable.processes.values_mut().filter_map(Option::take) {
                self.probes.release(own);
            }
        }
        let own = if executable.whole_file.is_some() {
            None
        } else {
            newly_attached = true;
            Some(self.probes.attach(
                executable.slot,
                &executable.binary,
                target,
                Scope::Process(pid),
            )?)
        };
        executable.processes.insert(pid, own);
        Ok(newly_attached)
    }

    /// `pid` exited: releases its own probes and its unfinished requests and calls.
    fn forget(&mut self, pid: u32) {
        let Some(file_id) = self.traced.remove(&pid) else {
            return;
        };
        let (unfinished_requests, unfinished_calls) = self.probes.forget_unfinished(pid);
        tracing::info!(
            pid,
            unfinished_requests,
            unfinished_calls,
            "traced process exited"
        );
        let Some(executable) = self.executables.get_mut(&file_id) else {
            return;
        };
        if let Some(Some(own)) = executable.processes.remove(&pid) {
            self.probes.release(own);
        }
        if executable.processes.is_empty() {
            executable.idle_since = Some(Instant::now());
            if executable.whole_file.is_none() {
                let executable = self.executables.remove(&file_id).expect("present");
                release_executable(&mut self.probes, executable);
            }
        }
    }

    /// Detaches executables no traced process has run for `KEEP_ATTACHED`.
    fn release_idle_executables(&mut self) {
        let idle: Vec<FileId> = (self.executables.iter())
            .filter(|(_, e)| e.idle_since.is_some_and(|at| at.elapsed() >= KEEP_ATTACHED))
            .map(|(id, _)| *id)
            .collect();
        for file_id in idle {
            let executable = self.executables.remove(&file_id).expect("listed above");
            tracing::info!(
                executable = %executable.binary.path.display(),
                "no process has run it for {KEEP_ATTACHED:?}; probes detached"
            );
            release_executable(&mut self.probes, executable);
        }
    }

    fn forward_abandoned_panics(&mut self) {
        let now = WallClock::now_monotonic_ns();
        let traced = &self.traced;
        let watcher = &self.watcher;
        let abandoned = self.probes.take_abandoned_panics(
            now,
            PANIC_GRACE.as_nanos() as u64,
            // Processes of a whole-file executable are traced before any scan sees them.
            |pid| traced.contains_key(&pid) || watcher.knows(pid),
        );
        for event in abandoned {
            if self.panicked_events.try_send(event).is_err() {
                tracing::warn!("span stage is not keeping up; dropped a panicked request's span");
            }
        }
    }
}

/// Releases every attachment of an executable and then its slot.
fn release_executable(probes: &mut Probes, mut executable: TracedExecutable) {
    if let Some(whole) = executable.whole_file.take() {
        probes.release(whole);
    }
    for own in executable.processes.into_values().flatten() {
        probes.release(own);
    }
    probes.free(executable.slot);
}
