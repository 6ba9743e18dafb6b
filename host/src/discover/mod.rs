//! Which processes to trace: scans /proc and matches processes against the user's selectors.
//!
//! A scan is cheap (see `watcher`), so the agent rescans on a short interval and notices a new
//! or restarted service within that interval.
mod cgroup;
mod ports;
mod selector;
mod watcher;

use std::path::PathBuf;

pub use cgroup::{container_identity, ContainerIdentity};
pub use ports::listening_ports_by_pid;
pub use selector::{Selector, SelectorError};
pub use watcher::ProcessWatcher;

/// A running process, identified by pid and start time (pids are reused).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProcessId {
    pub pid: u32,
    /// Start time in clock ticks since boot (/proc/PID/stat field 22).
    pub start_ticks: u64,
}

#[derive(Clone, Debug)]
pub struct Process {
    pub id: ProcessId,
    /// The executable path as the process sees it (/proc/PID/exe link target).
    pub executable: PathBuf,
}

/// What changed between two scans.
#[derive(Debug, Default)]
pub struct ScanDiff {
    pub started: Vec<Process>,
    pub exited: Vec<ProcessId>,
}
