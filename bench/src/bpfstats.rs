//! How long the BPF programs of a process ran, from the kernel's own accounting.
//!
//! With `kernel.bpf_stats_enabled` set, the kernel times every run of every program and shows the
//! totals in the `fdinfo` of each program's file descriptor (`run_time_ns`, `run_cnt`). That is
//! the programs' own time and nothing else: it separates what the agent's probes cost from what
//! the uprobe traps cost, and unlike a service's CPU time per request it is not blurred by the
//! traps, the service or other processes (it still scales with the host's speed).
//!
//! The same figures per program, with the program's name, come from the kernel's list of loaded
//! programs (aya's `loaded_programs`): `named_programs_of` picks the programs of one probe point
//! (a client call's, say) among those a process holds.
use std::collections::HashSet;

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

/// Bytes of a program's name the kernel keeps (`BPF_OBJ_NAME_LEN` less the NUL).
const KERNEL_NAME_BYTES: usize = 15;

/// The name the kernel lists a program called `name` under (the object's names are ASCII).
pub fn kernel_name(name: &str) -> &str {
    &name[..name.len().min(KERNEL_NAME_BYTES)]
}

/// Totals of the programs `pid` holds whose names (as in the eBPF object) are among `names`;
/// an error unless it holds each of them.
pub fn named_programs_of(pid: u32, names: &[&str]) -> Result<ProgramTotals> {
    let held = program_ids_of(pid)?;
    let mut totals = ProgramTotals::default();
    let mut found = HashSet::new();
    for info in aya::programs::loaded_programs() {
        // A program unloaded while we look is simply not counted.
        let Ok(info) = info else {
            continue;
        };
        if !held.contains(&info.id()) {
            continue;
        }
        let Some(name) = info
            .name_as_str()
            .and_then(|listed| names.iter().find(|n| kernel_name(n) == listed))
        else {
            continue;
        };
        found.insert(*name);
        totals.run_time_ns += info.run_time().as_nanos() as u64;
        totals.run_count += info.run_count();
    }
    ensure!(
        found.len() == names.len(),
        "pid {pid} holds {found:?} of the programs {names:?}"
    );
    Ok(totals)
}

/// The ids of the BPF programs `pid` holds open.
fn program_ids_of(pid: u32) -> Result<HashSet<u32>> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut ids = HashSet::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        if let Ok(text) = std::fs::read_to_string(entry?.path()) {
            ids.extend(program_id(&text));
        }
    }
    Ok(ids)
}

/// The program id in one fdinfo, when it describes a BPF program.
fn program_id(fdinfo: &str) -> Option<u32> {
    fdinfo
        .lines()
        .any(|l| l.starts_with("prog_type:"))
        .then(|| {
            fdinfo
                .lines()
                .find_map(|l| l.strip_prefix("prog_id:"))?
                .trim()
                .parse()
                .ok()
        })
        .flatten()
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

    #[test]
    fn finds_program_ids_and_the_names_the_kernel_lists() {
        assert_eq!(
            program_id("pos:\t0\nprog_type:\t2\nprog_jited:\t1\nprog_id:\t4242\nrun_cnt:\t3\n"),
            Some(4242)
        );
        // A map's fdinfo also has an id, of another kind.
        assert_eq!(program_id("pos:\t0\nmap_type:\t27\nmap_id:\t17\n"), None);
        assert_eq!(kernel_name("client_call_return"), "client_call_ret");
        assert_eq!(kernel_name("count_client_start"), "count_client_st");
        assert_eq!(kernel_name("request_end"), "request_end");
    }
}
