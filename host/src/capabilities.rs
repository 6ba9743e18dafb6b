//! The Linux capabilities the agent needs, checked once at start, and whether a seccomp filter
//! refuses the two system calls it cannot do without. Without this check either shows up later
//! as an EPERM from `bpf()`, `perf_event_open()` or a `/proc` read, which names neither the cause
//! nor the setting that fixes it.
use std::fmt::Write as _;

use anyhow::{bail, Context, Result};

/// One capability the agent uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// The number in `linux/capability.h`.
    pub number: u32,
    /// The name without `CAP_`, as Kubernetes and `--cap-add` spell it.
    pub name: &'static str,
    /// What the agent does with it.
    pub used_for: &'static str,
}

const fn cap(number: u32, name: &'static str, used_for: &'static str) -> Capability {
    Capability {
        number,
        name,
        used_for,
    }
}

pub const CAP_DAC_READ_SEARCH: Capability = cap(
    2,
    "DAC_READ_SEARCH",
    "opening other processes' executables whatever their file modes",
);
pub const CAP_SYS_PTRACE: Capability = cap(
    19,
    "SYS_PTRACE",
    "reading other processes' /proc/PID/exe, environ and maps",
);
pub const CAP_SYS_ADMIN: Capability =
    cap(21, "SYS_ADMIN", "everything CAP_BPF and CAP_PERFMON allow");
pub const CAP_SYS_RESOURCE: Capability = cap(
    24,
    "SYS_RESOURCE",
    "raising RLIMIT_MEMLOCK for the BPF maps (kernels before 5.11)",
);
pub const CAP_PERFMON: Capability = cap(38, "PERFMON", "attaching the uprobes (perf_event_open)");
pub const CAP_BPF: Capability = cap(39, "BPF", "loading the probes and their maps (bpf)");

/// What the agent needs on every kernel it supports (>= 5.8). CAP_SYS_RESOURCE is needed only on
/// kernels before 5.11 and is checked separately; deployments grant it for those.
pub const REQUIRED: [Capability; 4] = [CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH];

/// What the check reads about the process and the kernel.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    /// The effective set (`CapEff` of /proc/self/status).
    pub effective: u64,
    /// /proc/sys/kernel/cap_last_cap: kernels before 5.8 know neither CAP_BPF nor CAP_PERFMON.
    pub last_cap: u32,
    /// `(major, minor)` of the running kernel.
    pub kernel: (u32, u32),
    /// RLIMIT_MEMLOCK is already unlimited (then CAP_SYS_RESOURCE is never needed).
    pub memlock_unlimited: bool,
}

impl Facts {
    fn has(&self, c: Capability) -> bool {
        self.effective & (1 << c.number) != 0
    }
}

/// The capabilities missing from `facts`, each one the agent needs; empty when it can run.
/// CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, as the kernel accepts it for both.
pub fn missing(facts: &Facts) -> Vec<Capability> {
    let mut out = Vec::new();
    let admin = facts.has(CAP_SYS_ADMIN);
    if facts.last_cap < CAP_BPF.number {
        if !admin {
            out.push(CAP_SYS_ADMIN);
        }
    } else {
        for c in [CAP_BPF, CAP_PERFMON] {
            if !facts.has(c) && !admin {
                out.push(c);
            }
        }
    }
    for c in [CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH] {
        if !facts.has(c) {
            out.push(c);
        }
    }
    if facts.kernel < (5, 11) && !facts.memlock_unlimited && !facts.has(CAP_SYS_RESOURCE) {
        out.push(CAP_SYS_RESOURCE);
    }
    out
}

/// The error for `missing` (not empty): each capability, why, and how to grant it.
pub fn explain(missing: &[Capability], facts: &Facts) -> String {
    let names = |prefix: &str, sep: &str| {
        missing
            .iter()
            .map(|c| format!("{prefix}{}", c.name))
            .collect::<Vec<_>>()
            .join(sep)
    };
    let mut text = format!(
        "missing capabilit{} {}: ",
        if missing.len() == 1 { "y" } else { "ies" },
        names("CAP_", ", ")
    );
    for (i, c) in missing.iter().enumerate() {
        let _ = write!(
            text,
            "{}CAP_{} for {}",
            if i > 0 { "; " } else { "" },
            c.name,
            c.used_for
        );
    }
    if facts.last_cap < CAP_BPF.number {
        text.push_str(" (this kernel predates CAP_BPF and CAP_PERFMON)");
    }
    let _ = write!(
        text,
        ". Grant {}: in Kubernetes, add {} to the container's securityContext.capabilities.add; \
         with docker or podman, {}; under systemd, add {} to CapabilityBoundingSet= and \
         AmbientCapabilities=; or run as root with the full capability set",
        if missing.len() == 1 { "it" } else { "them" },
        names("", ", "),
        names("--cap-add=", " "),
        names("CAP_", " "),
    );
    text
}

/// Checks the running process; the error names every missing capability and how to grant it,
/// or the system call a seccomp filter refuses and how to allow it.
pub fn check() -> Result<()> {
    let facts = read_facts()?;
    let missing = missing(&facts);
    if !missing.is_empty() {
        bail!("{}", explain(&missing, &facts));
    }
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    if seccomp_filtered(&status) {
        let refused = refused_syscalls();
        if !refused.is_empty() {
            bail!("{}", explain_seccomp(&refused));
        }
    }
    Ok(())
}

/// `Seccomp: 2` in /proc/self/status: a filter is installed (a container's profile, systemd's
/// SystemCallFilter=).
fn seccomp_filtered(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .is_some_and(|v| v.trim() == "2")
}

/// The system calls among bpf() and perf_event_open() that a filter refuses. Each is made with
/// arguments the kernel rejects before doing anything (an unknown bpf command, a null perf
/// attribute): EINVAL or EFAULT when the call reaches the kernel, EPERM when a filter stops it
/// (the capabilities having been checked first, the kernel has no reason to say EPERM).
fn refused_syscalls() -> Vec<&'static str> {
    let errno = |result: libc::c_long| {
        (result == -1).then(|| std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    };
    // SAFETY: no pointer is dereferenced: the bpf command is invalid and its size 0, the perf
    // attribute pointer is null, which the kernel reports as EFAULT.
    let bpf = errno(unsafe { libc::syscall(libc::SYS_bpf, libc::c_int::MAX, 0usize, 0u32) });
    // SAFETY: as above.
    let perf = errno(unsafe { libc::syscall(libc::SYS_perf_event_open, 0usize, 0, -1, -1, 0u64) });
    classify_refusals(bpf, perf)
}

fn classify_refusals(bpf: Option<i32>, perf: Option<i32>) -> Vec<&'static str> {
    let mut out = Vec::new();
    if bpf == Some(libc::EPERM) {
        out.push("bpf");
    }
    if perf == Some(libc::EPERM) {
        out.push("perf_event_open");
    }
    out
}

/// The error for system calls a seccomp filter refuses.
pub fn explain_seccomp(refused: &[&str]) -> String {
    format!(
        "a seccomp filter refuses {}() even with CAP_BPF and CAP_PERFMON. In Kubernetes, set the \
         container's securityContext.seccompProfile.type to Unconfined (RuntimeDefault allows \
         these calls with CAP_BPF and CAP_PERFMON only from containerd 1.6.9, Docker 23.0 and \
         CRI-O 1.31 on; older runtimes allow them with CAP_SYS_ADMIN only); with docker or \
         podman, --security-opt seccomp=unconfined; under systemd, allow bpf and \
         perf_event_open in SystemCallFilter=",
        refused.join("() and ")
    )
}

fn read_facts() -> Result<Facts> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let effective = parse_cap_eff(&status).context("no CapEff line in /proc/self/status")?;
    // A kernel too old to have the file has neither CAP_BPF nor CAP_PERFMON.
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(CAP_PERFMON.number - 1);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("reading /proc/sys/kernel/osrelease")?;
    let kernel = parse_kernel_version(&release)
        .with_context(|| format!("unexpected kernel release {:?}", release.trim()))?;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid struct.
    let memlock_unlimited = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } == 0
        && limit.rlim_cur == libc::RLIM_INFINITY;
    Ok(Facts {
        effective,
        last_cap,
        kernel,
        memlock_unlimited,
    })
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(caps: &[Capability]) -> u64 {
        caps.iter().fold(0, |s, c| s | 1 << c.number)
    }

    fn facts(caps: &[Capability]) -> Facts {
        Facts {
            effective: set(caps),
            last_cap: 40,
            kernel: (6, 1),
            memlock_unlimited: false,
        }
    }

    #[test]
    fn the_daemonsets_set_is_enough_and_each_one_is_needed() {
        assert!(missing(&facts(&REQUIRED)).is_empty());
        for left_out in REQUIRED {
            let caps: Vec<_> = REQUIRED.into_iter().filter(|c| *c != left_out).collect();
            assert_eq!(missing(&facts(&caps)), vec![left_out]);
        }
    }

    #[test]
    fn root_has_everything() {
        let f = Facts {
            effective: 0x0000_01ff_ffff_ffff,
            ..facts(&[])
        };
        assert!(missing(&f).is_empty());
    }

    #[test]
    fn sys_admin_stands_in_for_bpf_and_perfmon_only() {
        let f = facts(&[CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH]);
        assert!(missing(&f).is_empty());
        let f = facts(&[CAP_SYS_ADMIN, CAP_SYS_PTRACE]);
        assert_eq!(missing(&f), vec![CAP_DAC_READ_SEARCH]);
    }

    #[test]
    fn kernels_before_cap_bpf_need_sys_admin() {
        let f = Facts {
            last_cap: 37,
            kernel: (5, 4),
            memlock_unlimited: true,
            ..facts(&[CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH])
        };
        assert_eq!(missing(&f), vec![CAP_SYS_ADMIN]);
        assert!(explain(&missing(&f), &f).contains("predates CAP_BPF"));
    }

    #[test]
    fn sys_resource_only_before_5_11_and_only_with_a_memlock_limit() {
        let mut f = facts(&REQUIRED);
        f.kernel = (5, 10);
        assert_eq!(missing(&f), vec![CAP_SYS_RESOURCE]);
        f.memlock_unlimited = true;
        assert!(missing(&f).is_empty());
        f.memlock_unlimited = false;
        f.effective |= set(&[CAP_SYS_RESOURCE]);
        assert!(missing(&f).is_empty());
        f.effective = set(&REQUIRED);
        f.kernel = (5, 11);
        assert!(missing(&f).is_empty());
    }

    #[test]
    fn the_message_names_the_capability_and_every_way_to_grant_it() {
        let f = facts(&[CAP_BPF, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH]);
        let text = explain(&missing(&f), &f);
        assert!(
            text.starts_with("missing capability CAP_PERFMON: "),
            "{text}"
        );
        for needed in [
            "perf_event_open",
            "add PERFMON to the container's securityContext.capabilities.add",
            "--cap-add=PERFMON",
            "add CAP_PERFMON to CapabilityBoundingSet=",
        ] {
            assert!(text.contains(needed), "{needed:?} not in {text}");
        }
        let f = facts(&[CAP_BPF, CAP_PERFMON]);
        let text = explain(&missing(&f), &f);
        assert!(
            text.starts_with("missing capabilities CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH: "),
            "{text}"
        );
        assert!(
            text.contains("--cap-add=SYS_PTRACE --cap-add=DAC_READ_SEARCH"),
            "{text}"
        );
    }

    #[test]
    fn parses_proc_status_and_kernel_releases() {
        let status = "Name:\tagent\nCapInh:\t0000000000000000\nCapPrm:\t000000c000080004\n\
                      CapEff:\t000000c000080004\nCapBnd:\t000000c000080004\n";
        assert_eq!(parse_cap_eff(status), Some(set(&REQUIRED)));
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
        assert_eq!(parse_kernel_version("6.18.44-fc-v1252\n"), Some((6, 18)));
        assert_eq!(parse_kernel_version("5.10.0+"), Some((5, 10)));
        assert_eq!(parse_kernel_version("garbage"), None);
    }

    #[test]
    fn seccomp_refusals_are_told_from_the_kernels_answers() {
        assert!(seccomp_filtered(
            "Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t1\n"
        ));
        assert!(!seccomp_filtered("Name:\tx\nSeccomp:\t0\n"));
        assert!(!seccomp_filtered("Name:\tx\n"));
        // The kernel's own answers to the invalid calls.
        assert!(classify_refusals(Some(libc::EINVAL), Some(libc::EFAULT)).is_empty());
        assert_eq!(
            classify_refusals(Some(libc::EPERM), Some(libc::EPERM)),
            vec!["bpf", "perf_event_open"]
        );
        assert_eq!(
            classify_refusals(Some(libc::EINVAL), Some(libc::EPERM)),
            vec!["perf_event_open"]
        );
        let text = explain_seccomp(&["bpf", "perf_event_open"]);
        assert!(
            text.starts_with("a seccomp filter refuses bpf() and perf_event_open() "),
            "{text}"
        );
        assert!(text.contains("seccompProfile.type to Unconfined"), "{text}");
        assert!(text.contains("--security-opt seccomp=unconfined"), "{text}");
    }

    #[test]
    fn the_probe_calls_reach_the_kernel_without_a_filter() {
        // Without the capabilities the kernel itself may say EPERM; under a filter, the filter
        // may: this holds for a test run as root without one (CI's).
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let facts = read_facts().unwrap();
        if missing(&facts).is_empty() && !seccomp_filtered(&status) {
            assert!(refused_syscalls().is_empty());
        } else {
            eprintln!("skipped: this test needs the agent's capabilities and no seccomp filter");
        }
    }

    #[test]
    fn this_process_can_be_checked() {
        // Whatever this test runs with, reading the facts must work on Linux.
        let f = read_facts().unwrap();
        assert!(f.last_cap >= CAP_SYS_RESOURCE.number);
        assert!(f.kernel >= (3, 0));
    }
}
