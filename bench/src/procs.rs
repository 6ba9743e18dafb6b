//! The processes a benchmark runs side by side: the traced Go service (pinned to its own core),
//! the agent in each configuration, the bpftrace peer, and their CPU time and memory from /proc.
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::ValueEnum;
pub use http_autoinstrument::attach::ProbeMode;

/// Core of the traced service; the load generator, the agent and the peer share the other.
pub const SERVICE_CPU: u32 = 0;
pub const TOOLS_CPU: u32 = 1;

fn pinned(cpu: u32, program: &Path) -> Command {
    let mut command = Command::new("taskset");
    command.arg("-c").arg(cpu.to_string()).arg(program);
    command
}

fn wait_for_file_text(path: &Path, text: &str, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let content = std::fs::read_to_string(path).unwrap_or_default();
        if content.contains(text) {
            return Ok(content);
        }
        if Instant::now() > deadline {
            bail!(
                "{} never said {text:?}; it says:\n{content}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn terminate(child: &mut Child) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The Go fixture server on one core with GOMAXPROCS=1: its request rate under a saturating
/// load is the inverse of its per-request CPU time, which instrumentation adds to.
pub struct Service {
    child: Child,
    pub pid: u32,
    pub http_port: u16,
    pub https_port: u16,
}

impl Service {
    /// Starts a copy of `binary` made at `copy`: a file of its own, so uprobes attached to the
    /// original's file cannot reach it.
    pub fn start_copy(binary: &Path, copy: &Path) -> Result<Service> {
        std::fs::copy(binary, copy).with_context(|| format!("copying {}", binary.display()))?;
        Service::start(copy)
    }

    pub fn start(binary: &Path) -> Result<Service> {
        let mut child = pinned(SERVICE_CPU, binary)
            .args(["-http", "127.0.0.1:0", "-https", "127.0.0.1:0"])
            .env("GOMAXPROCS", "1")
            .env("OTEL_SERVICE_NAME", "bench-service")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .context("reading the service's LISTENING line")?;
        let port = |key: &str| -> Result<u16> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|p| p.parse().ok())
                .with_context(|| format!("no {key} in {line:?}"))
        };
        Ok(Service {
            // taskset execs the program, so the child's pid is the service's.
            pid: child.id(),
            http_port: port("http=")?,
            https_port: port("https=")?,
            child,
        })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the agent runs in one configuration.
#[derive(Clone, Debug)]
pub struct AgentRun {
    /// `--probe-mode`: `Count` for the bare counting probe pair (the floor).
    pub probe_mode: ProbeMode,
    pub plugins: Option<PathBuf>,
    /// OTLP http/protobuf endpoint; `None`: span lines on stdout, piped for the caller to read
    /// (`Agent::child().stdout`).
    pub otlp_endpoint: Option<String>,
    /// `--pid`; otherwise `--exe` with this glob.
    pub target: Target,
    pub metrics_port: Option<u16>,
    /// `HTTP_AUTOINSTRUMENT_PROPAGATION=off`; otherwise the agent's default (on where the
    /// kernel allows it).
    pub propagation_off: bool,
}

#[derive(Clone, Debug)]
pub enum Target {
    Pid(u32),
    Exe(PathBuf),
}

pub struct Agent {
    child: Child,
    log: PathBuf,
    out: PathBuf,
}

/// The `key=value` counters of the agent's `final stats:` line.
pub type FinalStats = HashMap<String, u64>;

impl Agent {
    /// Starts the agent. Without an OTLP endpoint its stdout (span lines) is piped; with one,
    /// stdout goes to a file `stop` reads the final counters from.
    pub fn start(binary: &Path, run: &AgentRun, work: &Path) -> Result<Agent> {
        let log = work.join("agent.log");
        let out = work.join("agent.out");
        let mut command = pinned(TOOLS_CPU, binary);
        command
            .arg("--probe-mode")
            .arg(
                run.probe_mode
                    .to_possible_value()
                    .expect("every probe mode has a name")
                    .get_name(),
            )
            .args(["--stats-interval-secs", "0", "--log-format", "text"]);
        match &run.target {
            Target::Pid(pid) => command.arg("--pid").arg(pid.to_string()),
            Target::Exe(path) => command.arg("--exe").arg(path),
        };
        if let Some(dir) = &run.plugins {
            command.arg("--plugins").arg(dir);
        }
        if let Some(port) = run.metrics_port {
            command
                .arg("--metrics-address")
                .arg(format!("127.0.0.1:{port}"));
        }
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("OTEL_")) {
            command.env_remove(key);
        }
        if run.propagation_off {
            command.env("HTTP_AUTOINSTRUMENT_PROPAGATION", "off");
        }
        if let Some(endpoint) = &run.otlp_endpoint {
            command
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
                .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf");
        }
        let child = command
            .env("HTTP_AUTOINSTRUMENT_LOG", "info")
            .stdout(if run.otlp_endpoint.is_none() {
                Stdio::piped()
            } else {
                Stdio::from(std::fs::File::create(&out)?)
            })
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Agent { child, log, out })
    }

    /// Starts the agent with trace context propagation on: `run` in probe mode `full` where the
    /// kernel lets BPF programs write into processes, otherwise in `propagation-dry-run` (the
    /// same programs without the writes). Waits until it traces; true when it is the dry run.
    pub fn start_propagating(binary: &Path, run: &AgentRun, work: &Path) -> Result<(Agent, bool)> {
        let full = AgentRun {
            probe_mode: ProbeMode::Full,
            propagation_off: false,
            ..run.clone()
        };
        let mut agent = Agent::start(binary, &full, work)?;
        let log = agent.wait_tracing(Duration::from_secs(60))?;
        if log.contains("trace context propagation on") {
            return Ok((agent, false));
        }
        terminate(&mut agent.child);
        ensure!(
            log.contains("trace context propagation off (the kernel"),
            "the agent did not switch propagation on, and not for the kernel's sake:\n{log}"
        );
        let dry_run = AgentRun {
            probe_mode: ProbeMode::PropagationDryRun,
            ..full
        };
        let mut agent = Agent::start(binary, &dry_run, work)?;
        let log = agent.wait_tracing(Duration::from_secs(60))?;
        ensure!(
            log.contains("trace context propagation on as a dry run"),
            "the agent in probe mode propagation-dry-run did not switch propagation on:\n{log}"
        );
        Ok((agent, true))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits until the agent says it is tracing a process; returns its log so far.
    pub fn wait_tracing(&mut self, timeout: Duration) -> Result<String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "the agent exited ({status}): {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        wait_for_file_text(&self.log, " tracing", timeout)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the counters of its `final stats:` line (stdout must not have been piped).
    pub fn stop(mut self) -> Result<FinalStats> {
        terminate(&mut self.child);
        let out = std::fs::read_to_string(&self.out).unwrap_or_default();
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix("final stats: "))
            .with_context(|| format!("the agent printed no final stats; log:\n{}", self.log()))?;
        Ok(line
            .split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect())
    }
}

/// The peer: bpftrace with the same entry and request-end probes, printing method, path and duration
/// of every request (output to a file, counted afterwards).
pub struct Peer {
    child: Child,
    pub output: PathBuf,
}

impl Peer {
    pub fn start(script: &Path, work: &Path) -> Result<Peer> {
        let output = work.join("bpftrace.out");
        let child = pinned(TOOLS_CPU, Path::new("bpftrace"))
            .arg("--unsafe")
            .arg(script)
            .stdout(std::fs::File::create(&output)?)
            .stderr(std::fs::File::create(work.join("bpftrace.err"))?)
            .spawn()
            .context("starting bpftrace (apt-get install bpftrace; scripts/setup.sh does)")?;
        Ok(Peer { child, output })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until bpftrace has printed `needle`, calling `poke` between looks (a request that
    /// makes it print); an error with bpftrace's own after a minute.
    pub fn wait_printed(&self, needle: &str, work: &Path, poke: impl Fn()) -> Result<()> {
        let started = Instant::now();
        while !self.printed(needle) {
            poke();
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "bpftrace never printed {needle:?}: {}",
                std::fs::read_to_string(work.join("bpftrace.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Lines printed so far that are requests (`METHOD /path micros`).
    pub fn printed_requests(&self) -> usize {
        std::fs::read_to_string(&self.output)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split(' ').nth(1).is_some_and(|p| p.starts_with('/')))
            .count()
    }

    pub fn printed(&self, needle: &str) -> bool {
        std::fs::read_to_string(&self.output)
            .unwrap_or_default()
            .contains(needle)
    }

    pub fn stop(mut self) -> usize {
        terminate(&mut self.child);
        self.printed_requests()
    }
}

/// CPU time (user + system) and memory of a process.
#[derive(Clone, Copy, Debug)]
pub struct ProcSample {
    pub at: Instant,
    pub cpu_seconds: f64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

pub fn sample(pid: u32) -> Result<ProcSample> {
    let at = Instant::now();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("malformed /proc/PID/stat")?
        .1
        .split_whitespace()
        .collect();
    ensure!(fields.len() > 13, "short /proc/PID/stat");
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu_seconds = (fields[11].parse::<f64>()? + fields[12].parse::<f64>()?) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcSample {
        at,
        cpu_seconds,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

/// Percent of one core used between two samples.
pub fn cpu_percent(from: &ProcSample, to: &ProcSample) -> f64 {
    let wall = to.at.duration_since(from.at).as_secs_f64();
    100.0 * (to.cpu_seconds - from.cpu_seconds) / wall
}

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
