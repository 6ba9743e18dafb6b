//! Which processes to trace: scans /proc and matches processes against the user's selectors.
//!
//! A scan is cheap (a directory listing, one readlink per process, and the start time only of
//! processes that are new, have exec'd or are traced), so the agent rescans on a short interval
//! and notices a new or restarted service within that interval.
mod cgroup;
mod ports;
mod selector;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use cgroup::{container_identity, ContainerIdentity};
pub use ports::listening_ports_by_pid;
pub use selector::{Selector, SelectorError};

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

fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// Every process visible in /proc, except the agent itself and kernel threads. `known` gives the
/// identity of a pid seen before running the same executable, so that its start time is not read
/// again: a scan then costs a known process one readlink, not the six system calls of reading
/// /proc/PID/stat as well (a node runs hundreds of processes, rescanned four times a second).
fn scan_processes(known: impl Fn(u32, &Path) -> Option<ProcessId>) -> Vec<Process> {
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            if pid == own {
                return None;
            }
            // Kernel threads have no executable: readlink fails and they are skipped.
            let executable = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            let id = match known(pid, &executable) {
                Some(id) => id,
                None => ProcessId {
                    pid,
                    start_ticks: start_ticks(pid)?,
                },
            };
            Some(Process { id, executable })
        })
        .collect()
}

/// What changed between two scans.
#[derive(Debug, Default)]
pub struct ScanDiff {
    pub started: Vec<Process>,
    pub exited: Vec<ProcessId>,
}

/// Remembers the processes of the previous scan.
#[derive(Default)]
pub struct ProcessWatcher {
    /// The executable is part of the identity: a process that was forked from a shell shows the
    /// shell's executable until it execs the service, with the same pid and start time.
    known: HashMap<u32, (ProcessId, PathBuf)>,
}

impl ProcessWatcher {
    /// Scans /proc and returns what changed since the last scan. A process seen before with the
    /// same executable keeps its identity without its start time being read again, unless
    /// `check_identity` asks for it: a pid reused by a new process of the same program between
    /// two scans only matters for a traced one, whose probes and offsets belong to the old one.
    pub fn scan(&mut self, check_identity: impl Fn(u32) -> bool) -> ScanDiff {
        let known = &self.known;
        let now = scan_processes(|pid, executable| {
            if check_identity(pid) {
                return None;
            }
            known
                .get(&pid)
                .filter(|(_, known_executable)| known_executable == executable)
                .map(|(id, _)| id.clone())
        });
        self.update(now)
    }

    pub fn update(&mut self, now: Vec<Process>) -> ScanDiff {
        let mut diff = ScanDiff::default();
        let mut next = HashMap::with_capacity(now.len());
        for process in now {
            match self.known.remove(&process.id.pid) {
                Some((id, exe)) if id == process.id && exe == process.executable => {}
                Some((old, _)) => {
                    // Same pid, new process or new program (exec): the old one is gone.
                    diff.exited.push(old);
                    diff.started.push(process.clone());
                }
                None => diff.started.push(process.clone()),
            }
            next.insert(process.id.pid, (process.id, process.executable));
        }
        diff.exited
            .extend(self.known.drain().map(|(_, (id, _))| id));
        self.known = next;
        diff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, start: u64) -> Process {
        Process {
            id: ProcessId {
                pid,
                start_ticks: start,
            },
            executable: PathBuf::from("/bin/x"),
        }
    }

    #[test]
    fn detects_start_exit_and_pid_reuse() {
        let mut w = ProcessWatcher::default();
        let d = w.update(vec![p(1, 10), p(2, 20)]);
        assert_eq!(d.started.len(), 2);
        assert!(d.exited.is_empty());
        let d = w.update(vec![p(1, 10), p(2, 99), p(3, 30)]);
        let started: Vec<u32> = d.started.iter().map(|p| p.id.pid).collect();
        assert_eq!(started, vec![2, 3]);
        assert_eq!(
            d.exited,
            vec![ProcessId {
                pid: 2,
                start_ticks: 20
            }]
        );
        let mut exec = p(3, 30);
        exec.executable = PathBuf::from("/srv/server");
        let d = w.update(vec![p(1, 10), p(2, 99), exec.clone()]);
        assert_eq!(d.started.len(), 1, "an exec is a new program");
        assert_eq!(
            d.exited,
            vec![ProcessId {
                pid: 3,
                start_ticks: 30
            }]
        );
        let d = w.update(vec![exec]);
        assert!(d.started.is_empty());
        let mut exited: Vec<u32> = d.exited.iter().map(|p| p.pid).collect();
        exited.sort();
        assert_eq!(exited, vec![1, 2]);
    }

    #[test]
    fn scan_sees_this_test_process_parent_but_not_itself() {
        let all = scan_processes(|_, _| None);
        assert!(all.iter().all(|p| p.id.pid != std::process::id()));
        let parent = std::os::unix::process::parent_id();
        let found = all.iter().find(|p| p.id.pid == parent).unwrap();
        assert_eq!(Some(found.id.start_ticks), start_ticks(parent));
    }

    #[test]
    fn a_known_process_keeps_its_identity_unless_its_executable_changed_or_it_is_checked() {
        let parent = std::os::unix::process::parent_id();
        let real = start_ticks(parent).unwrap();
        let mut w = ProcessWatcher::default();
        let first = w.scan(|_| false);
        assert!(first.started.iter().any(|p| p.id.pid == parent));
        // A start time the scan would never read: kept only while the start time is not read.
        w.known.get_mut(&parent).unwrap().0.start_ticks = real + 1;
        let unchanged = w.scan(|_| false);
        assert!(unchanged.started.iter().all(|p| p.id.pid != parent));
        assert_eq!(w.known[&parent].0.start_ticks, real + 1);
        // Checked (as a traced process is): read again, and its stale identity reported gone.
        let checked = w.scan(|pid| pid == parent);
        assert!(checked
            .exited
            .iter()
            .any(|id| id.pid == parent && id.start_ticks == real + 1));
        assert_eq!(w.known[&parent].0.start_ticks, real);
        // Another executable (an exec): read again.
        let (id, executable) = w.known.get_mut(&parent).unwrap();
        id.start_ticks = real + 1;
        *executable = PathBuf::from("/nonexistent/old-program");
        let execd = w.scan(|_| false);
        assert!(execd
            .started
            .iter()
            .any(|p| p.id.pid == parent && p.id.start_ticks == real));
    }
}
