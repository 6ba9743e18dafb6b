//! Which processes run now, from /proc, and what changed since the last scan.
//!
//! A scan lists /proc, which costs little, and reads a process's executable (a readlink) only
//! where it may have changed: a process that is new, young or traced, and the others every
//! `RECHECK`: reading every process's executable on every scan cost an idle node with many
//! processes a noticeable share of a core. A process is young for `YOUNG` after it is first seen:
//! a fork usually execs its program soon after (a shell's child, `runc init` becoming a
//! container's entrypoint), and that exec is then seen at the next scan. A process that execs
//! another program later in life is seen within `RECHECK`.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Process, ProcessId, ScanDiff};

/// How long after it is first seen a process has its executable read at every scan.
const YOUNG: Duration = Duration::from_secs(10);
/// How often the executable of an older process (or the lack of one) is read again.
const RECHECK: Duration = Duration::from_secs(5);

/// Remembers the processes of the previous scans.
#[derive(Default)]
pub struct ProcessWatcher {
    known: HashMap<u32, Known>,
    /// Pids with no executable to read (kernel threads), and when that was last tried.
    without_executable: HashMap<u32, Instant>,
}

struct Known {
    id: ProcessId,
    /// The executable is part of the identity: a process that was forked from a shell shows the
    /// shell's executable until it execs the service, with the same pid and start time.
    executable: PathBuf,
    first_seen: Instant,
    /// When the executable was last read.
    checked: Instant,
}

impl Known {
    fn due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.first_seen) < YOUNG
            || now.saturating_duration_since(self.checked) >= RECHECK
    }
}

/// What a scan reads of the system: /proc, or a stand-in in tests.
trait ProcSource {
    fn pids(&self) -> Vec<u32>;
    /// The /proc/PID/exe link target; `None` for kernel threads and processes gone.
    fn executable(&self, pid: u32) -> Option<PathBuf>;
    /// Start time in clock ticks since boot; `None` if the process is gone.
    fn start_ticks(&self, pid: u32) -> Option<u64>;
}

struct ProcFs;

impl ProcSource for ProcFs {
    fn pids(&self) -> Vec<u32> {
        let own = std::process::id();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&pid| pid != own)
            .collect()
    }

    fn executable(&self, pid: u32) -> Option<PathBuf> {
        std::fs::read_link(format!("/proc/{pid}/exe")).ok()
    }

    fn start_ticks(&self, pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
        let after_comm = &stat[stat.rfind(')')? + 1..];
        after_comm.split_whitespace().nth(19)?.parse().ok()
    }
}

impl ProcessWatcher {
    /// Scans /proc and returns what changed since the last scan. A process seen before with the
    /// same executable keeps its identity without its start time being read again, unless
    /// `check_identity` asks for it: a pid reused by a new process of the same program between
    /// two scans only matters for a traced one, whose probes and offsets belong to the old one.
    pub fn scan(&mut self, check_identity: impl Fn(u32) -> bool) -> ScanDiff {
        self.scan_from(&ProcFs, Instant::now(), check_identity)
    }

    /// The processes of the last scan and what each runs.
    pub fn processes(&self) -> impl Iterator<Item = (u32, &Path)> {
        self.known
            .iter()
            .map(|(pid, k)| (*pid, k.executable.as_path()))
    }

    /// Whether the last scan found `pid` running a program.
    pub fn knows(&self, pid: u32) -> bool {
        self.known.contains_key(&pid)
    }

    fn scan_from(
        &mut self,
        source: &impl ProcSource,
        now: Instant,
        check_identity: impl Fn(u32) -> bool,
    ) -> ScanDiff {
        let mut diff = ScanDiff::default();
        let mut known = HashMap::with_capacity(self.known.len());
        let mut without_executable = HashMap::new();
        for pid in source.pids() {
            if let Some(&tried) = self.without_executable.get(&pid) {
                if now.saturating_duration_since(tried) < RECHECK {
                    without_executable.insert(pid, tried);
                    continue;
                }
            }
            let identity_checked = check_identity(pid);
            let previous = match self.known.remove(&pid) {
                Some(p) if !identity_checked && !p.due(now) => {
                    known.insert(pid, p);
                    continue;
                }
                previous => previous,
            };
            let Some(executable) = source.executable(pid) else {
                diff.exited.extend(previous.map(|p| p.id));
                without_executable.insert(pid, now);
                continue;
            };
            // The same program as before: the same process, unless asked to make sure.
            let previous = match previous {
                Some(mut p) if p.executable == executable && !identity_checked => {
                    p.checked = now;
                    known.insert(pid, p);
                    continue;
                }
                previous => previous,
            };
            let Some(start_ticks) = source.start_ticks(pid) else {
                diff.exited.extend(previous.map(|p| p.id));
                continue;
            };
            let id = ProcessId { pid, start_ticks };
            let first_seen = match previous {
                Some(p) if p.id == id && p.executable == executable => p.first_seen,
                previous => {
                    // Same pid, new process or new program (exec): the old one is gone.
                    diff.exited.extend(previous.map(|p| p.id));
                    diff.started.push(Process {
                        id: id.clone(),
                        executable: executable.clone(),
                    });
                    now
                }
            };
            known.insert(
                pid,
                Known {
                    id,
                    executable,
                    first_seen,
                    checked: now,
                },
            );
        }
        diff.exited.extend(self.known.drain().map(|(_, k)| k.id));
        self.known = known;
        self.without_executable = without_executable;
        diff
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// Processes by pid: (start ticks, executable; `None` for a kernel thread).
    #[derive(Default)]
    struct FakeProc {
        processes: RefCell<HashMap<u32, (u64, Option<&'static str>)>>,
        readlinks: Cell<usize>,
    }

    impl FakeProc {
        fn set(&self, pid: u32, start: u64, exe: Option<&'static str>) {
            self.processes.borrow_mut().insert(pid, (start, exe));
        }
        fn remove(&self, pid: u32) {
            self.processes.borrow_mut().remove(&pid);
        }
        fn readlinks(&self) -> usize {
            self.readlinks.replace(0)
        }
    }

    impl ProcSource for FakeProc {
        fn pids(&self) -> Vec<u32> {
            let mut pids: Vec<u32> = self.processes.borrow().keys().copied().collect();
            pids.sort();
            pids
        }
        fn executable(&self, pid: u32) -> Option<PathBuf> {
            self.readlinks.set(self.readlinks.get() + 1);
            self.processes.borrow().get(&pid)?.1.map(PathBuf::from)
        }
        fn start_ticks(&self, pid: u32) -> Option<u64> {
            Some(self.processes.borrow().get(&pid)?.0)
        }
    }

    fn started(diff: &ScanDiff) -> Vec<(u32, String)> {
        let mut v: Vec<_> = (diff.started.iter())
            .map(|p| (p.id.pid, p.executable.display().to_string()))
            .collect();
        v.sort();
        v
    }

    fn exited(diff: &ScanDiff) -> Vec<(u32, u64)> {
        let mut v: Vec<_> = diff.exited.iter().map(|p| (p.pid, p.start_ticks)).collect();
        v.sort();
        v
    }

    #[test]
    fn detects_start_exit_pid_reuse_and_exec() {
        let proc = FakeProc::default();
        let mut w = ProcessWatcher::default();
        let t0 = Instant::now();
        proc.set(1, 10, Some("/bin/x"));
        proc.set(2, 20, Some("/bin/x"));
        let d = w.scan_from(&proc, t0, |_| false);
        assert_eq!(started(&d), [(1, "/bin/x".into()), (2, "/bin/x".into())]);
        assert!(d.exited.is_empty());

        // Pid 2 reused by another program, pid 3 new.
        proc.set(2, 99, Some("/bin/y"));
        proc.set(3, 30, Some("/bin/x"));
        let d = w.scan_from(&proc, t0 + Duration::from_millis(250), |_| false);
        assert_eq!(started(&d), [(2, "/bin/y".into()), (3, "/bin/x".into())]);
        assert_eq!(exited(&d), [(2, 20)]);

        // Pid 3 execs the service: a new program in the same process.
        proc.set(3, 30, Some("/srv/server"));
        let d = w.scan_from(&proc, t0 + Duration::from_millis(500), |_| false);
        assert_eq!(started(&d), [(3, "/srv/server".into())]);
        assert_eq!(exited(&d), [(3, 30)]);

        proc.remove(1);
        proc.remove(2);
        let d = w.scan_from(&proc, t0 + Duration::from_millis(750), |_| false);
        assert!(d.started.is_empty());
        assert_eq!(exited(&d), [(1, 10), (2, 99)]);
    }

    #[test]
    fn old_processes_and_kernel_threads_are_read_again_only_every_recheck() {
        let proc = FakeProc::default();
        let mut w = ProcessWatcher::default();
        let t0 = Instant::now();
        for pid in 1..=100 {
            proc.set(pid, pid as u64, Some("/bin/x"));
        }
        for pid in 101..=150 {
            proc.set(pid, 0, None);
        }
        w.scan_from(&proc, t0, |_| false);
        assert_eq!(proc.readlinks(), 150, "the first scan reads every process");
        // Young: their executables are read at every scan.
        w.scan_from(&proc, t0 + Duration::from_secs(1), |_| false);
        assert_eq!(
            proc.readlinks(),
            100,
            "young processes are read, kernel threads are not"
        );

        let mut at = t0 + YOUNG + Duration::from_millis(1);
        let d = w.scan_from(&proc, at, |_| false);
        assert_eq!(
            proc.readlinks(),
            150,
            "no longer young: due for their recheck"
        );
        assert!(d.started.is_empty() && d.exited.is_empty());
        // Between two rechecks a scan only lists /proc.
        proc.set(7, 7, Some("/srv/late-exec"));
        at += Duration::from_millis(250);
        let d = w.scan_from(&proc, at, |_| false);
        assert_eq!(proc.readlinks(), 0);
        assert!(d.started.is_empty());
        // The recheck sees the late exec.
        at += RECHECK;
        let d = w.scan_from(&proc, at, |_| false);
        assert_eq!(started(&d), [(7, "/srv/late-exec".into())]);
        assert_eq!(exited(&d), [(7, 7)]);
        assert_eq!(proc.readlinks(), 150, "all read again");
    }

    #[test]
    fn traced_processes_are_checked_at_every_scan() {
        let proc = FakeProc::default();
        let mut w = ProcessWatcher::default();
        let t0 = Instant::now();
        proc.set(5, 50, Some("/srv/server"));
        proc.set(6, 60, Some("/bin/x"));
        w.scan_from(&proc, t0, |_| false);
        let mut at = t0 + YOUNG + RECHECK;
        w.scan_from(&proc, at, |_| false);
        proc.readlinks();

        // The traced process's pid is reused by a new run of the same program: its probes belong
        // to the old one, so it must show as exited and started.
        proc.set(5, 51, Some("/srv/server"));
        at += Duration::from_millis(250);
        let d = w.scan_from(&proc, at, |pid| pid == 5);
        assert_eq!(proc.readlinks(), 1, "only the traced process is read");
        assert_eq!(exited(&d), [(5, 50)]);
        assert_eq!(started(&d), [(5, "/srv/server".into())]);
    }

    #[test]
    fn a_new_process_in_a_kernel_threads_old_pid_is_seen_at_the_recheck() {
        let proc = FakeProc::default();
        let mut w = ProcessWatcher::default();
        let t0 = Instant::now();
        proc.set(9, 0, None);
        w.scan_from(&proc, t0, |_| false);
        proc.set(9, 90, Some("/srv/server"));
        let d = w.scan_from(&proc, t0 + RECHECK, |_| false);
        assert_eq!(started(&d), [(9, "/srv/server".into())]);
    }

    #[test]
    fn scan_sees_this_test_process_parent_but_not_itself() {
        let mut w = ProcessWatcher::default();
        let d = w.scan(|_| false);
        assert!(d.started.iter().all(|p| p.id.pid != std::process::id()));
        let parent = std::os::unix::process::parent_id();
        let found = d.started.iter().find(|p| p.id.pid == parent).unwrap();
        assert_eq!(Some(found.id.start_ticks), ProcFs.start_ticks(parent));
        assert_eq!(
            Some(found.executable.clone()),
            ProcFs.executable(parent),
            "the executable is the /proc/PID/exe target"
        );
    }
}
