//! Overhead on the traced service, every configuration side by side in each round:
//! none, the floor (bare counting probes), the agent, the agent with three plugins, and the
//! bpftrace peer, over HTTP and HTTPS.
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use http_autoinstrument::inspect::GoBinary;
use serde::Serialize;

use crate::bpfstats;
use crate::procs::{cpu_percent, sample, Agent, AgentRun, Peer, ProbeMode, Service, Target};
use crate::wrk::{self, WrkResult};
use crate::Bench;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Mode {
    None,
    Floor,
    /// The floor with the request end on ServeHTTP's RETs (single-stepped by the kernel): what
    /// the agent's placement saves.
    FloorOnRets,
    /// The agent's probes without reading the traced process (`--probe-mode bookkeeping`): what
    /// the clock, the in-flight table and the ring buffer cost, apart from the reads.
    Bookkeeping,
    Agent,
    AgentPlugins,
    Bpftrace,
}

impl Mode {
    pub const ALL: [Mode; 7] = [
        Mode::None,
        Mode::Floor,
        Mode::FloorOnRets,
        Mode::Bookkeeping,
        Mode::Agent,
        Mode::AgentPlugins,
        Mode::Bpftrace,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Mode::None => "(a) none",
            Mode::Floor => "(b) floor: counting probes",
            Mode::FloorOnRets => "(b′) floor, request end on RETs",
            Mode::Bookkeeping => "(c′) agent without reading the request",
            Mode::Agent => "(c) agent, no plugins",
            Mode::AgentPlugins => "(d) agent + 3 plugins",
            Mode::Bpftrace => "(e) bpftrace peer",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Floor => "floor",
            Mode::FloorOnRets => "floor on RETs",
            Mode::Bookkeeping => "bookkeeping",
            Mode::Agent => "agent",
            Mode::AgentPlugins => "agent+3",
            Mode::Bpftrace => "bpftrace",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn label(self) -> &'static str {
        match self {
            Scheme::Http => "HTTP",
            Scheme::Https => "HTTPS",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct OverheadRun {
    pub scheme: Scheme,
    pub mode: Mode,
    pub round: usize,
    pub wrk: WrkResult,
    /// CPU time (user + system) the service used per request during the measurement. Uprobe
    /// traps run in the service's own context, so this is what instrumentation adds to.
    pub service_cpu_us_per_request: f64,
    /// The same for the uninstrumented copy of the service, loaded over the same seconds on
    /// the same core (see `measure`).
    pub baseline_cpu_us_per_request: f64,
    /// The uninstrumented copy's requests/s over the same seconds.
    pub baseline_requests_per_second: f64,
    /// The service's CPU time over the wall time of the measurement: ~50 when it and the
    /// uninstrumented copy kept the core busy together.
    pub service_busy_percent: f64,
    /// Nanoseconds the instrumentation's BPF programs ran per request, from the kernel's own
    /// accounting over a separate short load (see `probe_ns_per_request`); none for (a).
    pub probe_ns_per_request: Option<f64>,
    /// What the instrumentation reported for this run (spans exported, probe hits, lines printed).
    pub check: String,
}

/// bpftrace's name of a probe at `offset` in the file `binary` (a raw file offset: bpftrace
/// takes those in a binary without symbols).
fn bpftrace_probe(binary: &Path, offset: u64) -> String {
    format!("uprobe:{}:{:#x}", binary.display(), offset)
}

/// bpftrace's name of the agent's entry probe point (`serverHandler.ServeHTTP`) in `peer_binary`,
/// the stripped copy of the inspected `binary`.
pub fn bpftrace_entry_probe(binary: &GoBinary, peer_binary: &Path) -> String {
    let f = &binary.serve_http;
    bpftrace_probe(peer_binary, f.file_offset + f.entry_offset)
}

/// The bpftrace program: the probes on the same file offsets as the agent's (the entry point of
/// `net/http.serverHandler.ServeHTTP` and the request ends, `GoBinary::request_end_offsets`),
/// keyed by goroutine (R14 in Go's register ABI), reading `Request.Method` and
/// `Request.RequestURI` (path and query) with the offsets our inspection found.
pub fn bpftrace_script(binary: &GoBinary, peer_binary: &Path) -> String {
    let o = &binary.offsets;
    let at = |offset: u64| bpftrace_probe(peer_binary, offset);
    let mut script = String::new();
    let _ = writeln!(
        script,
        "// Same capture as the agent, by bpftrace: method, target and duration of every request.\n\
         {}\n{{\n  @start[reg(\"r14\")] = nsecs;\n  @req[reg(\"r14\")] = reg(\"di\");\n}}",
        bpftrace_entry_probe(binary, peer_binary)
    );
    let ends: Vec<String> = binary.request_end_offsets().into_iter().map(at).collect();
    let _ = writeln!(
        script,
        "{}\n/@req[reg(\"r14\")]/\n{{\n  $g = reg(\"r14\");\n  $r = @req[$g];\n  \
         printf(\"%s %s %d\\n\", str(*(uint64*)($r + {m:#x}), *(uint64*)($r + {m8:#x})), \
         str(*(uint64*)($r + {t:#x}), *(uint64*)($r + {t8:#x})), (nsecs - @start[$g]) / 1000);\n  \
         delete(@req[$g]);\n  delete(@start[$g]);\n}}",
        ends.join(",\n"),
        m = o.request_method,
        m8 = o.request_method + 8,
        t = o.request_request_uri,
        t8 = o.request_request_uri + 8,
    );
    script
}

/// Instrumentation running for one measurement.
enum Instrumentation {
    Nothing,
    Agent(Agent),
    Peer(Peer),
}

impl Instrumentation {
    /// The process holding the BPF programs.
    fn pid(&self) -> Option<u32> {
        match self {
            Instrumentation::Nothing => None,
            Instrumentation::Agent(agent) => Some(agent.pid()),
            Instrumentation::Peer(peer) => Some(peer.pid()),
        }
    }
}

/// Nanoseconds the BPF programs of process `pid` run per request, over `duration` of load with
/// the kernel's run-time accounting on. Kept out of the timed measurement, which the accounting
/// would slow a little.
fn probe_ns_per_request(pid: u32, url: &str, duration: Duration) -> Result<f64> {
    bpfstats::with_accounting(|| {
        let before = bpfstats::programs_of(pid)?;
        let load = wrk::run(url, duration)?;
        bpfstats::ns_per_request(pid, before, load.requests)
    })
}

fn instrument(bench: &Bench, mode: Mode, service: &Service, dir: &Path) -> Result<Instrumentation> {
    let run = |probe_mode: ProbeMode, plugins: bool| AgentRun {
        probe_mode,
        plugins: plugins.then(|| bench.three_plugins.path().to_path_buf()),
        otlp_endpoint: Some(bench.sink.endpoint.clone()),
        target: Target::Pid(service.pid),
        metrics_port: None,
        propagation_off: false,
    };
    let agent = |run: AgentRun| -> Result<Instrumentation> {
        let mut agent = Agent::start(&bench.agent, &run, dir)?;
        agent.wait_tracing(Duration::from_secs(60))?;
        Ok(Instrumentation::Agent(agent))
    };
    match mode {
        Mode::None => Ok(Instrumentation::Nothing),
        Mode::Floor => agent(run(ProbeMode::Count, false)),
        Mode::FloorOnRets => agent(run(ProbeMode::CountOnRets, false)),
        Mode::Bookkeeping => agent(run(ProbeMode::Bookkeeping, false)),
        Mode::Agent => agent(run(ProbeMode::Full, false)),
        Mode::AgentPlugins => agent(run(ProbeMode::Full, true)),
        Mode::Bpftrace => {
            let peer = Peer::start(&bench.bpftrace_script, dir)?;
            // Attached once a request shows up in its output.
            peer.wait_printed("/bench-ready", dir, || {
                let _ = crate::http::get(service.http_port, "/bench-ready");
            })?;
            Ok(Instrumentation::Peer(peer))
        }
    }
}

/// Stops the instrumentation and checks it captured what wrk sent; returns what it reported.
fn finish(
    instrumentation: Instrumentation,
    mode: Mode,
    requests: u64,
    require_keeping_pace: bool,
) -> Result<String> {
    match instrumentation {
        Instrumentation::Nothing => Ok(String::new()),
        Instrumentation::Agent(agent) => {
            let stats = agent.stop()?;
            let get = |k: &str| stats.get(k).copied().unwrap_or(0);
            ensure!(
                get("events_lost") == 0 || !require_keeping_pace,
                "{mode:?}: events lost: {stats:?}"
            );
            if matches!(mode, Mode::Floor | Mode::FloorOnRets) {
                ensure!(
                    get("probe_entry_hits") >= requests,
                    "{mode:?}: {requests} requests but {stats:?}"
                );
                Ok(format!(
                    "probe hits {} + {}",
                    get("probe_entry_hits"),
                    get("probe_request_end_hits")
                ))
            } else {
                // (No event lost was checked above.)
                let kept_pace = get("spans_exported") >= requests && get("spans_failed") == 0;
                let accounted = get("events_submitted") + get("events_lost") >= requests;
                ensure!(
                    accounted && (kept_pace || !require_keeping_pace),
                    "{mode:?}: {requests} requests but {stats:?}"
                );
                Ok(format!("{} spans exported", get("spans_exported")))
            }
        }
        Instrumentation::Peer(peer) => {
            let printed = peer.stop();
            ensure!(
                printed as u64 >= requests,
                "bpftrace printed {printed} requests of {requests}"
            );
            Ok(format!("{printed} requests printed"))
        }
    }
}

/// The URL of `service` for `scheme`.
fn url(service: &Service, scheme: Scheme) -> String {
    match scheme {
        Scheme::Http => format!("http://127.0.0.1:{}/", service.http_port),
        Scheme::Https => format!("https://127.0.0.1:{}/", service.https_port),
    }
}

/// Every configuration, paired with an uninstrumented copy of the service: both copies share the
/// service core and are loaded over the same seconds, so the instrumented one's CPU time per
/// request minus the copy's is what the instrumentation adds, whatever the host's speed did in
/// those seconds. (Measured one after the other, "none" alone moved 15-20 µs per request between
/// rounds here, more than the agent adds.) "(a) none" pairs two uninstrumented copies: the
/// spread of the method itself.
pub fn measure(bench: &Bench) -> Result<Vec<OverheadRun>> {
    let service = Service::start(&bench.server)?;
    let peer_service = Service::start(&bench.peer_server)?;
    // Its own file, so no uprobe on the traced files can reach it.
    let baseline = Service::start_copy(&bench.server, &bench.work.path().join("service-baseline"))?;
    let mut runs = Vec::new();
    for round in 1..=bench.settings.rounds {
        for scheme in [Scheme::Http, Scheme::Https] {
            for mode in Mode::ALL {
                let target = if mode == Mode::Bpftrace {
                    &peer_service
                } else {
                    &service
                };
                let urls = [url(target, scheme), url(&baseline, scheme)];
                let dir = tempfile::tempdir_in(bench.work.path())?;
                let instrumentation = instrument(bench, mode, target, dir.path())
                    .with_context(|| format!("starting {}", mode.label()))?;
                wrk::run_together(&urls, bench.settings.warmup, &[])?;
                let before = [sample(target.pid)?, sample(baseline.pid)?];
                let loads = wrk::run_together(&urls, bench.settings.duration, &[])?;
                let after = [sample(target.pid)?, sample(baseline.pid)?];
                let cpu_us_per_request = |i: usize| {
                    (after[i].cpu_seconds - before[i].cpu_seconds) * 1e6 / loads[i].requests as f64
                };
                let probe_ns_per_request = instrumentation
                    .pid()
                    .map(|pid| probe_ns_per_request(pid, &urls[0], bench.settings.probe_time))
                    .transpose()?;
                let service_cpu_us_per_request = cpu_us_per_request(0);
                let baseline_cpu_us_per_request = cpu_us_per_request(1);
                let service_busy_percent = cpu_percent(&before[0], &after[0]);
                let result = loads[0];
                let check = finish(
                    instrumentation,
                    mode,
                    result.requests,
                    bench.settings.require_keeping_pace,
                )?;
                eprintln!(
                    "overhead: round {round} {} {:<32} {:>9.0} req/s {:>6.1} us CPU/request, uninstrumented copy {:>6.1} (busy {:.0}%) p50 {:>7.0} us p99 {:>7.0} us {check}",
                    scheme.label(),
                    mode.label(),
                    result.requests_per_second,
                    service_cpu_us_per_request,
                    baseline_cpu_us_per_request,
                    service_busy_percent,
                    result.p50_us,
                    result.p99_us
                );
                runs.push(OverheadRun {
                    scheme,
                    mode,
                    round,
                    wrk: result,
                    service_cpu_us_per_request,
                    baseline_cpu_us_per_request,
                    baseline_requests_per_second: loads[1].requests_per_second,
                    service_busy_percent,
                    probe_ns_per_request,
                    check,
                });
            }
        }
    }
    Ok(runs)
}
