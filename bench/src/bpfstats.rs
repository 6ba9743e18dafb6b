//! How long the BPF programs of a process ran, from the kernel's own accounting.
//!
//! With `kernel.bpf_stats_enabled` set, the kernel times every run of every program and shows the
//! totals in the `fdinfo` of each program's file descriptor (`run_time_ns`, `run_cnt`). That is
//! the programs' own time and nothing else: it separates what the agent's probes cost from what
//! the uprobe traps cost, and unlike a service's CPU time per request it is not blurred by the
//! traps, the service or other processes (it still scales with the host's speed).
use anyhow::{ensure, Context, Result};

const SWITCH: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Run time and run count summed over every BPF program a process holds open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramTotals {
    pub run_time_ns: u64,
    pub run_count: u64,
}

impl ProgramTotals {
    pub fn since(self, earlier: ProgramTotals) -> ProgramTotals {
        ProgramTotals {
            run_time_ns: self.run_time_ns.saturating_sub(earlier.run_time_ns),
            run_count: self.run_count.saturating_sub(earlier.run_count),
        }
    }
}

/// Totals of the programs `pid` holds.
pub fn programs_of(pid: u32) -> Result<ProgramTotals> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut totals = ProgramTotals::default();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        // A descriptor closed while we look is simply not counted.
        let Ok(text) = std::fs::read_to_string(entry?.path()) else {
            continue;
        };
        add_program(&mut totals, &text);
    }
    Ok(totals)
}

/// Nanoseconds per request the programs of `pid` ran since `before`, over a load of `requests`;
/// an error when they ran fewer times than that (they are not on the loaded path).
pub fn ns_per_request(pid: u32, before: ProgramTotals, requests: u64) -> Result<f64> {
    let ran = programs_of(pid)?.since(before);
    ensure!(
        ran.run_count >= requests,
        "the programs of pid {pid} ran {} times for {requests} requests",
        ran.run_count
    );
    Ok(ran.run_time_ns as f64 / requests as f64)
}

/// Adds one fdinfo's figures when it describes a BPF program.
fn add_program(totals: &mut ProgramTotals, fdinfo: &str) {
    if !fdinfo.lines().any(|l| l.starts_with("prog_type:")) {
        return;
    }
    let field = |key: &str| -> u64 {
        fdinfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    totals.run_time_ns += field("run_time_ns:");
    totals.run_count += field("run_cnt:");
}

/// Runs `measure` with the kernel's BPF run-time accounting switched on, then restores the
/// previous setting. Accounting costs each program run two clock reads, so it is on only here.
pub fn with_accounting<T>(measure: impl FnOnce() -> Result<T>) -> Result<T> {
    let previous = std::fs::read_to_string(SWITCH).with_context(|| format!("reading {SWITCH}"))?;
    switch("1")?;
    let result = measure();
    switch(previous.trim())?;
    result
}

fn switch(value: &str) -> Result<()> {
    std::fs::write(SWITCH, value).with_context(|| format!("writing {value} to {SWITCH}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_programs_and_skips_other_descriptors() {
        let mut totals = ProgramTotals::default();
        add_program(
            &mut totals,
            "pos:\t0\nflags:\t02000002\nprog_type:\t2\nprog_jited:\t1\nrun_time_ns:\t1500\nrun_cnt:\t3\n",
        );
        add_program(
            &mut totals,
            "pos:\t0\nprog_type:\t2\nrun_time_ns:\t500\nrun_cnt:\t1\n",
        );
        // A map's fdinfo has no prog_type and no run figures.
        add_program(&mut totals, "pos:\t0\nmap_type:\t27\nmax_entries:\t4096\n");
        add_program(&mut totals, "pos:\t0\nflags:\t02\nmnt_id:\t25\n");
        assert_eq!(
            totals,
            ProgramTotals {
                run_time_ns: 2000,
                run_count: 4
            }
        );
        let later = ProgramTotals {
            run_time_ns: 2600,
            run_count: 6,
        };
        assert_eq!(
            later.since(totals),
            ProgramTotals {
                run_time_ns: 600,
                run_count: 2
            }
        );
    }
}
