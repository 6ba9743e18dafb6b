//! Target selection: by executable path glob, by listening port, or by pid. With no selector the
//! agent traces every Go process that serves HTTP with net/http.
use std::collections::HashSet;
use std::path::{Path, PathBuf};

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

    /// What to tell a user whose selector has matched no process: the selector, why a glob may
    /// have missed (its `*` stops at `/`, as in a shell), and `candidates`, the executables of
    /// the Go services this agent could trace here.
    pub fn unmatched_hint(&self, candidates: &[PathBuf]) -> String {
        let mut selectors: Vec<String> = (self.exe_globs.iter())
            .map(|g| format!("--exe '{}'", g.as_str()))
            .collect();
        let mut ports: Vec<u16> = self.ports.iter().copied().collect();
        ports.sort_unstable();
        selectors.extend(ports.iter().map(|p| format!("--port {p}")));
        let mut pids: Vec<u32> = self.pids.iter().copied().collect();
        pids.sort_unstable();
        selectors.extend(pids.iter().map(|p| format!("--pid {p}")));
        let mut hint = format!("no process matches {}", selectors.join(" "));
        for glob in &self.exe_globs {
            for candidate in candidates {
                if let Some(deeper) = deeper_glob(glob, candidate) {
                    hint.push_str(&format!(
                        "; a glob's * stops at '/', as in a shell: --exe '{deeper}' matches {}",
                        candidate.display()
                    ));
                    break;
                }
            }
        }
        if candidates.is_empty() {
            hint.push_str("; no Go service that this agent can trace runs here yet");
        } else {
            let list: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
            hint.push_str(&format!(
                "; Go services this agent can trace here: {} (select them with --exe PATH, \
                 --exe '**/NAME', --port PORT or --pid PID, or give no selector to trace all)",
                list.join(", ")
            ));
        }
        hint
    }

    /// Whether `process` is selected for what it runs (no selector, or `--exe`), which then
    /// selects every process of the same executable; `--pid` and `--port` select one process.
    pub fn selects_executable(&self, process: &Process) -> bool {
        self.selects_all()
            || (self.exe_globs.iter())
                .any(|g| g.matches_path_with(&process.executable, MATCH_OPTIONS))
    }
}

const MATCH_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// For a relative glob that misses `path` only because its `*` cannot cross a `/`: the same glob
/// under `**/`, if that matches.
fn deeper_glob(glob: &glob::Pattern, path: &Path) -> Option<String> {
    let text = glob.as_str();
    if text.starts_with('/') || glob.matches_path_with(path, MATCH_OPTIONS) {
        return None;
    }
    let mut rest = text;
    while let Some(r) = rest.strip_prefix("*/").or_else(|| rest.strip_prefix("**/")) {
        rest = r;
    }
    let deeper = format!("**/{rest}");
    let pattern = glob::Pattern::new(&deeper).ok()?;
    pattern
        .matches_path_with(path, MATCH_OPTIONS)
        .then_some(deeper)
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
    fn a_glob_that_stops_at_a_slash_is_told_to_use_two_stars() {
        let candidates = [PathBuf::from("/srv/app/svc"), PathBuf::from("/usr/bin/api")];
        for glob in ["*/svc", "*svc"] {
            let s = Selector::new(&[glob.into()], &[], &[]).unwrap();
            assert!(!s.matches(&proc(1, "/srv/app/svc"), None), "{glob}");
            let hint = s.unmatched_hint(&candidates);
            assert!(
                hint.starts_with(&format!("no process matches --exe '{glob}'")),
                "{hint}"
            );
            let deeper = if glob == "*/svc" { "**/svc" } else { "**/*svc" };
            assert!(
                hint.contains(&format!("--exe '{deeper}' matches /srv/app/svc")),
                "{hint}"
            );
            let suggested = Selector::new(&[deeper.into()], &[], &[]).unwrap();
            assert!(
                suggested.matches(&proc(1, "/srv/app/svc"), None),
                "{deeper}"
            );
            let under = Selector::new(&["/srv/**".into()], &[], &[]).unwrap();
            assert!(
                under.matches(&proc(1, "/srv/app/svc"), None),
                "as the README says"
            );
            assert!(
                hint.contains("can trace here: /srv/app/svc, /usr/bin/api"),
                "{hint}"
            );
        }
    }

    #[test]
    fn an_unmatched_selector_without_candidates_says_so() {
        let s = Selector::new(&["/opt/*".into()], &[8080], &[42]).unwrap();
        let hint = s.unmatched_hint(&[PathBuf::from("/srv/app/svc")]);
        assert!(
            hint.starts_with("no process matches --exe '/opt/*' --port 8080 --pid 42"),
            "{hint}"
        );
        assert!(
            !hint.contains("stops at"),
            "an absolute glob gets no ** advice: {hint}"
        );
        assert!(s
            .unmatched_hint(&[])
            .ends_with("no Go service that this agent can trace runs here yet"));
    }

    #[test]
    fn bad_glob_names_itself() {
        let e = Selector::new(&["/srv/[".into()], &[], &[]).unwrap_err();
        assert!(e.to_string().contains("/srv/["));
    }
}
