//! Target selection: by executable path glob, by listening port, or by pid. With no selector the
//! agent traces every Go process that serves HTTP with net/http.
use std::collections::HashSet;

use super::Process;

#[derive(Debug, thiserror::Error)]
pub enum SelectorError {
    #[error(
        "invalid executable glob {glob:?}: {source} (example: --exe '/usr/local/bin/*-server')"
    )]
    BadGlob {
        glob: String,
        source: glob::PatternError,
    },
}

#[derive(Debug, Default, Clone)]
pub struct Selector {
    exe_globs: Vec<glob::Pattern>,
    ports: HashSet<u16>,
    pids: HashSet<u32>,
}

impl Selector {
    pub fn new(exe_globs: &[String], ports: &[u16], pids: &[u32]) -> Result<Self, SelectorError> {
        let exe_globs = exe_globs
            .iter()
            .map(|g| {
                glob::Pattern::new(g).map_err(|source| SelectorError::BadGlob {
                    glob: g.clone(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Selector {
            exe_globs,
            ports: ports.iter().copied().collect(),
            pids: pids.iter().copied().collect(),
        })
    }

    /// No selector given: every Go net/http process is a target.
    pub fn selects_all(&self) -> bool {
        self.exe_globs.is_empty() && self.ports.is_empty() && self.pids.is_empty()
    }

    pub fn needs_ports(&self) -> bool {
        !self.ports.is_empty()
    }

    /// The ports of `--port` selectors.
    pub fn ports(&self) -> &HashSet<u16> {
        &self.ports
    }

    /// Whether `process` is a target. `listening` is the set of ports it listens on (only
    /// consulted when port selectors exist).
    pub fn matches(&self, process: &Process, listening: Option<&HashSet<u16>>) -> bool {
        if self.selects_executable(process) || self.pids.contains(&process.id.pid) {
            return true;
        }
        listening.is_some_and(|ports| ports.iter().any(|p| self.ports.contains(p)))
    }

    /// Whether `process` is selected for what it runs (no selector, or `--exe`), which then
    /// selects every process of the same executable; `--pid` and `--port` select one process.
    pub fn selects_executable(&self, process: &Process) -> bool {
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        self.selects_all()
            || (self.exe_globs.iter()).any(|g| g.matches_path_with(&process.executable, options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::ProcessId;
    use std::path::PathBuf;

    fn proc(pid: u32, exe: &str) -> Process {
        Process {
            id: ProcessId {
                pid,
                start_ticks: 1,
            },
            executable: PathBuf::from(exe),
        }
    }

    #[test]
    fn empty_selector_selects_everything() {
        let s = Selector::new(&[], &[], &[]).unwrap();
        assert!(s.selects_all());
        assert!(s.matches(&proc(1, "/bin/anything"), None));
    }

    #[test]
    fn matches_by_glob_pid_or_port() {
        let s = Selector::new(&["/srv/*/server".into()], &[8443], &[42]).unwrap();
        assert!(s.matches(&proc(1, "/srv/shop/server"), None));
        assert!(!s.matches(&proc(1, "/srv/shop/deep/server"), None));
        assert!(s.matches(&proc(42, "/usr/bin/other"), None));
        let ports: HashSet<u16> = [8443].into();
        assert!(s.matches(&proc(7, "/usr/bin/other"), Some(&ports)));
        let ports: HashSet<u16> = [80].into();
        assert!(!s.matches(&proc(7, "/usr/bin/other"), Some(&ports)));
    }

    #[test]
    fn bad_glob_names_itself() {
        let e = Selector::new(&["/srv/[".into()], &[], &[]).unwrap_err();
        assert!(e.to_string().contains("/srv/["));
    }
}
