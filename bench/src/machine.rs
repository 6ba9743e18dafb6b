//! What the numbers were measured on.
use std::process::Command;

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub virtualization: String,
    /// How the kernel guards its returns against speculation (Retbleed, SRSO): on some CPUs
    /// every kernel function's return then pays for it, and each helper a probe calls has several.
    pub return_mitigations: String,
    pub tools: Vec<(String, String)>,
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "not found".into())
}

pub fn describe(go_version: &str) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_default()
    };
    let memory_kib: f64 = field(&meminfo, "MemTotal")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let hypervisor = cpuinfo.contains(" hypervisor");
    let detected = |kind: &str| {
        Some(first_line("systemd-detect-virt", &[kind]))
            .filter(|v| !v.is_empty() && v != "none" && v != "not found")
    };
    let (vm, container) = (detected("--vm"), detected("--container"));
    Machine {
        cpu: field(&cpuinfo, "model name"),
        // The machine's, not this process's: scripts/bench.sh pins the benchmark to one core.
        cores: cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count(),
        memory_gib: memory_kib / 1024.0 / 1024.0,
        kernel: first_line("uname", &["-r"]),
        virtualization: {
            let machine = match (vm, hypervisor) {
                (Some(vm), _) => format!("virtual machine ({vm})"),
                (None, true) => "virtual machine (hypervisor flag set)".into(),
                (None, false) => "none detected".into(),
            };
            match container {
                Some(c) => format!("{machine}, in a {c} container"),
                None => machine,
            }
        },
        return_mitigations: ["retbleed", "spec_rstack_overflow"]
            .iter()
            .map(|name| {
                let path = format!("/sys/devices/system/cpu/vulnerabilities/{name}");
                let state = std::fs::read_to_string(path).unwrap_or_else(|_| "not listed".into());
                format!("{name}: {}", state.trim())
            })
            .collect::<Vec<_>>()
            .join("; "),
        tools: vec![
            ("Go (service)".into(), go_version.into()),
            ("rustc".into(), first_line("rustc", &["--version"])),
            ("wrk".into(), first_line("wrk", &["--version"])),
            ("bpftrace".into(), first_line("bpftrace", &["--version"])),
            ("valgrind".into(), first_line("valgrind", &["--version"])),
            ("curl".into(), first_line("curl", &["--version"])),
        ],
    }
}
