//! The Linux capabilities the agent needs, checked once at start, and whether a seccomp filter
//! refuses the two system calls it cannot do without. Without this check either shows up later
//! as an EPERM or EACCES from `bpf()`, `perf_event_open()` or a `/proc` read, which names neither
//! the cause nor the setting that fixes it.
//!
//! Attaching uprobes took CAP_PERFMON from Linux 5.8 until the fix for CVE-2025-38466 (upstream
//! ba677dbe, in 6.16 and the stable releases 6.15.7, 6.12.39, 6.6.99, 6.1.146, 5.15.189 and
//! 5.10.240) made it CAP_SYS_ADMIN's again. Distribution kernels carry the fix under their own
//! version numbers, so the kernel is asked instead: a uprobe event on a file that does not exist
//! is refused (EACCES) before the path is looked at when the capability is missing.
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
pub const CAP_SYS_ADMIN: Capability = cap(
    21,
    "SYS_ADMIN",
    "loading the probes (bpf) and attaching the uprobes (perf_event_open); kernels with the fix \
     for CVE-2025-38466 (Linux 6.16, 6.15.7, 6.12.39, 6.6.99, 6.1.146, 5.15.189, 5.10.240 and \
     later) attach uprobes for CAP_SYS_ADMIN only, older ones also for CAP_PERFMON",
);
pub const CAP_SYS_RESOURCE: Capability = cap(
    24,
    "SYS_RESOURCE",
    "raising RLIMIT_MEMLOCK for the BPF maps (kernels before 5.11)",
);
pub const CAP_PERFMON: Capability = cap(38, "PERFMON", "attaching the uprobes (perf_event_open)");
pub const CAP_BPF: Capability = cap(39, "BPF", "loading the probes and their maps (bpf)");

/// What the deployments grant (DaemonSet, systemd unit): enough on every kernel the agent
/// supports, with CAP_SYS_RESOURCE besides for kernels before 5.11.
pub const REQUIRED: [Capability; 3] = [CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH];

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
    /// The kernel refused this process a uprobe event for want of a capability.
    pub uprobes_refused: bool,
}

impl Facts {
    fn has(&self, c: Capability) -> bool {
        self.effective & (1 << c.number) != 0
    }
}

/// The capabilities missing from `facts`, each one the agent needs; empty when it can run.
/// CAP_SYS_ADMIN covers CAP_BPF and CAP_PERFMON; it is what is asked for whenever uprobes cannot
/// be attached, since it suffices on every kernel.
pub fn missing(facts: &Facts) -> Vec<Capability> {
    let mut out = Vec::new();
    if !facts.has(CAP_SYS_ADMIN) {
        if facts.last_cap < CAP_BPF.number || !facts.has(CAP_PERFMON) || facts.uprobes_refused {
            out.push(CAP_SYS_ADMIN);
        } else if !facts.has(CAP_BPF) {
            out.push(CAP_BPF);
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
    } else if facts.uprobes_refused {
        text.push_str(" (this kernel refused a uprobe with CAP_PERFMON)");
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
        "a seccomp filter refuses {}(). The runtimes' default profiles (Kubernetes' \
         RuntimeDefault) allow these calls to a process with CAP_SYS_ADMIN, and to one with \
         CAP_BPF and CAP_PERFMON only from containerd 1.6.9, Docker 23.0 and CRI-O 1.31 on: grant \
         SYS_ADMIN as deployments/kubernetes does, or in Kubernetes set the container's \
         securityContext.seccompProfile.type to Unconfined; with docker or podman, \
         --security-opt seccomp=unconfined; under systemd, allow bpf and perf_event_open in \
         SystemCallFilter=",
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
    let mut facts = Facts {
        effective,
        last_cap,
        kernel,
        memlock_unlimited,
        uprobes_refused: false,
    };
    // Only worth asking when the capabilities would do on an older kernel.
    if !facts.has(CAP_SYS_ADMIN) && facts.has(CAP_PERFMON) {
        facts.uprobes_refused = uprobe_refused();
    }
    Ok(facts)
}

/// Asks the kernel for a uprobe event on a file that does not exist, in this process: the uprobe
/// PMU checks the capability first (EACCES), then looks the path up (ENOENT). `exclude_kernel`
/// keeps perf_event_paranoid's own check out of it. False when the kernel has no uprobe PMU (the
/// agent then fails with its own message) or anything else answers, a seccomp filter's EPERM
/// among them (checked next, by the caller).
fn uprobe_refused() -> bool {
    const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
    let Some(pmu_type) = std::fs::read_to_string("/sys/bus/event_source/devices/uprobe/type")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
    else {
        return false;
    };
    let path = c"/nonexistent/http-autoinstrument-capability-check";
    // perf_event_attr up to config2 (PERF_ATTR_SIZE_VER1, 72 bytes): type and size, config,
    // sample_period, sample_type, read_format, the flag bits, wakeup_events and bp_type,
    // config1 (the uprobe's path), config2 (its offset).
    let mut attr = [0u64; 9];
    attr[0] = pmu_type | (72 << 32);
    attr[5] = 1 << 5; // exclude_kernel
    attr[7] = path.as_ptr() as u64;
    // SAFETY: attr is a valid perf_event_attr of the size it declares, whose path points to a
    // NUL-terminated string that outlives the call; pid 0 and cpu -1 mean this process.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            0,
            -1,
            -1,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd >= 0 {
        // SAFETY: a descriptor this call just opened.
        unsafe { libc::close(fd as libc::c_int) };
        return false;
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EACCES)
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

/// The test suite's rule for a test that cannot run here (shared by every test binary).
#[cfg(test)]
#[path = "../tests/support/skip.rs"]
mod skip;

#[cfg(test)]
mod tests {
    use super::*;

    fn set(caps: &[Capability]) -> u64 {
        caps.iter().fold(0, |s, c| s | 1 << c.number)
    }

    /// A kernel with the uprobe fix (CAP_PERFMON refused) when `fixed`.
    fn facts(caps: &[Capability], fixed: bool) -> Facts {
        Facts {
            effective: set(caps),
            last_cap: 40,
            kernel: (6, 12),
            memlock_unlimited: false,
            uprobes_refused: fixed && !caps.contains(&CAP_SYS_ADMIN) && caps.contains(&CAP_PERFMON),
        }
    }

    #[test]
    fn the_deployed_set_is_enough_and_each_one_is_needed() {
        for fixed in [true, false] {
            assert!(missing(&facts(&REQUIRED, fixed)).is_empty());
            for left_out in REQUIRED {
                let caps: Vec<_> = REQUIRED.into_iter().filter(|c| *c != left_out).collect();
                assert_eq!(missing(&facts(&caps, fixed)), vec![left_out]);
            }
        }
    }

    #[test]
    fn bpf_and_perfmon_do_only_on_kernels_without_the_uprobe_fix() {
        let caps = [CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH];
        assert!(missing(&facts(&caps, false)).is_empty());
        let f = facts(&caps, true);
        assert_eq!(missing(&f), vec![CAP_SYS_ADMIN]);
        assert!(explain(&missing(&f), &f).contains("refused a uprobe with CAP_PERFMON"));
        // Without CAP_PERFMON the one answer that works everywhere is CAP_SYS_ADMIN, which
        // covers CAP_BPF too; without CAP_BPF alone, CAP_BPF.
        let caps = [CAP_BPF, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH];
        assert_eq!(missing(&facts(&caps, false)), vec![CAP_SYS_ADMIN]);
        let caps = [CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH];
        assert_eq!(missing(&facts(&caps, false)), vec![CAP_BPF]);
    }

    #[test]
    fn root_has_everything() {
        let f = Facts {
            effective: 0x0000_01ff_ffff_ffff,
            ..facts(&[], true)
        };
        assert!(missing(&f).is_empty());
    }

    #[test]
    fn kernels_before_cap_bpf_need_sys_admin() {
        let f = Facts {
            last_cap: 37,
            kernel: (5, 4),
            memlock_unlimited: true,
            ..facts(&[CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH], false)
        };
        assert_eq!(missing(&f), vec![CAP_SYS_ADMIN]);
        assert!(explain(&missing(&f), &f).contains("predates CAP_BPF"));
    }

    #[test]
    fn sys_resource_only_before_5_11_and_only_with_a_memlock_limit() {
        let mut f = facts(&REQUIRED, true);
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
        let f = facts(&[CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH], true);
        let text = explain(&missing(&f), &f);
        assert!(
            text.starts_with("missing capability CAP_SYS_ADMIN: "),
            "{text}"
        );
        for needed in [
            "attaching the uprobes (perf_event_open)",
            "CVE-2025-38466",
            "add SYS_ADMIN to the container's securityContext.capabilities.add",
            "--cap-add=SYS_ADMIN",
            "add CAP_SYS_ADMIN to CapabilityBoundingSet=",
        ] {
            assert!(text.contains(needed), "{needed:?} not in {text}");
        }
        let f = facts(&[CAP_SYS_ADMIN], true);
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
        let status = "Name:\tagent\nCapInh:\t0000000000000000\nCapPrm:\t0000000000280004\n\
                      CapEff:\t0000000000280004\nCapBnd:\t0000000000280004\n";
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
            text.starts_with("a seccomp filter refuses bpf() and perf_event_open(). "),
            "{text}"
        );
        assert!(text.contains("seccompProfile.type to Unconfined"), "{text}");
        assert!(text.contains("--security-opt seccomp=unconfined"), "{text}");
    }

    #[test]
    fn the_probe_calls_reach_the_kernel_as_root_without_a_filter() {
        // Without the capabilities the kernel itself may refuse; under a filter, the filter may.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let facts = read_facts().unwrap();
        if facts.has(CAP_SYS_ADMIN) && !seccomp_filtered(&status) {
            assert!(refused_syscalls().is_empty());
            assert!(!uprobe_refused(), "CAP_SYS_ADMIN may always attach uprobes");
        } else {
            skip::skip("this test needs CAP_SYS_ADMIN and no seccomp filter: run it as root");
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
