//! Which processes to trace: scans /proc and matches processes against the user's selectors.
//!
//! A scan is cheap (a directory listing plus one readlink per new process), so the agent rescans
//! on a short interval and notices a new or restarted service within that interval.
mod cgroup;
mod ports;
mod selector;

use std::collections::HashMap;
use std::path::PathBuf;

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

/// Every process visible in /proc, except the agent itself and kernel threads.
pub fn scan_processes() -> Vec<Process> {
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
            Some(Process {
                id: ProcessId {
                    pid,
                    start_ticks: start_ticks(pid)?,
                },
                executable,
            })
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
        let all = scan_processes();
        assert!(all.iter().all(|p| p.id.pid != std::process::id()));
        let parent = std::os::unix::process::parent_id();
        assert!(all.iter().any(|p| p.id.pid == parent));
    }
}
