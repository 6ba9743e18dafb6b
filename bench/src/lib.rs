//! http-autoinstrument's benchmarks: what the agent costs a traced Go service and what its
//! pipeline can carry, measured side by side in one run and written up as `docs/benchmarks.md`.
//!
//! `scripts/bench.sh` builds everything and runs [`run`] through the `http-autoinstrument-bench`
//! binary; criterion micro-benchmarks of the pipeline parts are in `benches/`.
//!
//! - `workload`, `replay`, `reload`: the pipeline without the kernel (also used by `benches/`);
//!   `instructions`: the same replay's instructions per span, counted under valgrind.
//! - `procs`, `http`, `wrk`, `load`, `sink`: processes, traffic and an OTLP receiver.
//! - `overhead`, `hits`, `trace_cost`, `resources`, `startup`, `export`: one section of the report
//!   each.
//! - `report`, `plot`, `machine`, `criterion`: the write-up.
//! - `compare`: two builds of the probes side by side (`scripts/bench.sh --compare`).
pub mod bpfstats;
pub mod compare;
pub mod compare_plugins;
pub mod criterion;
pub mod export;
pub mod hits;
pub mod http;
pub mod instructions;
pub mod load;
pub mod machine;
pub mod overhead;
pub mod plot;
pub mod procs;
pub mod reload;
pub mod replay;
pub mod report;
pub mod resources;
pub mod sink;
pub mod startup;
pub mod stats;
pub mod trace_cost;
pub mod workload;
pub mod wrk;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde::Serialize;

/// How long and how often; `smoke()` is the CI run that only shows everything works.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub rounds: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Load run after each overhead measurement with the kernel's BPF accounting on.
    pub probe_time: Duration,
    pub rates: Vec<f64>,
    pub hit_requests: u64,
    pub startups: usize,
    pub reload_swaps: usize,
    pub replay_time: Duration,
    /// Batches per stage whose instructions are counted (deterministic: one run is enough).
    pub instruction_batches: usize,
    pub export_spans: u64,
    /// Whether the agent must keep pace with the saturated service: no event lost in the kernel
    /// and every request exported. The smoke run uses debug builds, which cannot: their ring
    /// buffer fills and their bounded export queue drops (both counted, as designed), so there
    /// every request must only be accounted for, captured or counted as lost.
    pub require_keeping_pace: bool,
}

impl Settings {
    pub fn full() -> Settings {
        Settings {
            rounds: 5,
            duration: Duration::from_secs(6),
            warmup: Duration::from_secs(2),
            probe_time: Duration::from_secs(2),
            rates: vec![1000.0, 5000.0, 10000.0],
            hit_requests: 200,
            startups: 5,
            reload_swaps: 6,
            replay_time: Duration::from_secs(3),
            instruction_batches: 8,
            export_spans: 200_000,
            require_keeping_pace: true,
        }
    }

    pub fn smoke() -> Settings {
        Settings {
            rounds: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::from_secs(1),
            probe_time: Duration::from_secs(1),
            rates: vec![1000.0],
            hit_requests: 20,
            startups: 1,
            reload_swaps: 2,
            replay_time: Duration::from_millis(300),
            instruction_batches: 1,
            export_spans: 5_000,
            require_keeping_pace: false,
        }
    }
}

pub fn ensure_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "the benchmarks attach uprobes: run them as root (sudo scripts/bench.sh)"
    );
    Ok(())
}

/// Everything a run needs, prepared once.
pub struct Bench {
    pub settings: Settings,
    pub agent: PathBuf,
    /// The Go fixture server the agent traces.
    pub server: PathBuf,
    /// The same server stripped of symbols, for bpftrace (see `overhead::bpftrace_script`).
    pub peer_server: PathBuf,
    pub bpftrace_script: PathBuf,
    /// bpftrace's name of the entry probe point in `peer_server` (`trace_cost::read_cost_script`).
    pub peer_entry: String,
    pub built_plugins: PathBuf,
    /// filter, redact and route-template, in chain order.
    pub three_plugins: tempfile::TempDir,
    /// Compiled plugins, shared by the replay and the instruction counts: compiled once a run.
    pub plugin_cache: PathBuf,
    pub sink: sink::OtlpSink,
    pub go_version: String,
    pub work: tempfile::TempDir,
}

impl Bench {
    pub fn prepare(
        settings: Settings,
        agent: &Path,
        server: &Path,
        built_plugins: &Path,
    ) -> Result<Bench> {
        ensure_root()?;
        let binary = http_autoinstrument::inspect::inspect_binary(server)
            .with_context(|| format!("inspecting {}", server.display()))?;
        let work = tempfile::tempdir()?;
        let peer_server = work.path().join("service-stripped");
        std::fs::copy(server, &peer_server)?;
        let status = std::process::Command::new("strip")
            .arg(&peer_server)
            .status()
            .context("running strip (binutils)")?;
        ensure!(status.success(), "strip {} failed", peer_server.display());
        let plugin_cache = work.path().join("plugin-cache");
        std::fs::create_dir_all(&plugin_cache)?;
        let bpftrace_script = work.path().join("peer.bt");
        std::fs::write(
            &bpftrace_script,
            overhead::bpftrace_script(&binary, &peer_server),
        )?;
        let peer_entry = overhead::bpftrace_entry_probe(&binary, &peer_server);
        Ok(Bench {
            settings,
            agent: agent.to_path_buf(),
            server: server.to_path_buf(),
            peer_server,
            bpftrace_script,
            peer_entry,
            built_plugins: built_plugins.to_path_buf(),
            three_plugins: replay::three_plugin_dir(built_plugins)?,
            plugin_cache,
            sink: sink::OtlpSink::start()?,
            go_version: binary.go_version.to_string(),
            work,
        })
    }
}

/// Everything measured in one run.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub settings: Settings,
    pub machine: machine::Machine,
    pub overhead: Vec<overhead::OverheadRun>,
    pub probe_hits: Vec<hits::ProbeHits>,
    pub trace_cost: Vec<trace_cost::TraceCostRun>,
    pub replay: Vec<replay::ReplayResult>,
    pub instructions: Vec<instructions::InstructionCount>,
    pub export: Vec<export::ExportResult>,
    pub resources: Vec<resources::ResourceRun>,
    pub startup: Vec<startup::StartupRun>,
    pub reload_ms: Vec<f64>,
    pub micro: Vec<criterion::MicroBench>,
}

/// The report's sections, in the order they run.
pub const SECTIONS: [&str; 9] = [
    "replay",
    "instructions",
    "export",
    "reload",
    "hits",
    "traces",
    "startup",
    "resources",
    "overhead",
];

/// Runs every measurement in turn, or only `only` (names from [`SECTIONS`]; what is left out
/// stays empty).
pub fn run(bench: &Bench, criterion_dir: Option<&Path>, only: &[String]) -> Result<Results> {
    let wanted = |section: &str| only.is_empty() || only.iter().any(|s| s == section);
    let machine = machine::describe(&bench.go_version);
    let mut replay = Vec::new();
    if wanted("replay") {
        eprintln!("== pipeline replay (no kernel)");
        let chain = replay::load_chain(bench.three_plugins.path(), Some(&bench.plugin_cache))?;
        let replayer = replay::Replay::new(chain, replay::BATCH);
        for round in 1..=bench.settings.rounds {
            for stage in replay::Stage::ALL {
                let r = replayer.measure(stage, bench.settings.replay_time);
                eprintln!(
                    "replay: round {round} {} {:.0} spans/s",
                    stage.label(),
                    r.spans_per_second
                );
                replay.push(r);
            }
        }
    }
    let mut instructions = Vec::new();
    if wanted("instructions") {
        eprintln!("== pipeline instructions per span (valgrind)");
        instructions = instructions::count(
            &bench.built_plugins,
            &bench.plugin_cache,
            bench.settings.instruction_batches,
        )
        .context("counting the pipeline's instructions")?;
    }
    let mut export = Vec::new();
    if wanted("export") {
        eprintln!("== export over loopback");
        for round in 1..=bench.settings.rounds {
            let r = export::measure(&bench.sink, bench.settings.export_spans)?;
            eprintln!("export: round {round} {:.0} spans/s", r.spans_per_second);
            export.push(r);
        }
    }
    let mut reload_ms = Vec::new();
    if wanted("reload") {
        eprintln!("== plugin reload");
        for d in reload::reload_latencies(&bench.built_plugins, bench.settings.reload_swaps)? {
            reload_ms.push(d.as_secs_f64() * 1e3);
        }
        eprintln!("reload: {reload_ms:.1?} ms");
    }
    let mut probe_hits = Vec::new();
    if wanted("hits") {
        eprintln!("== probe hits per request");
        probe_hits = hits::measure(bench).context("probe hits")?;
    }
    let mut trace_cost = Vec::new();
    if wanted("traces") {
        eprintln!("== BPF run time of trace context and client calls");
        trace_cost = trace_cost::measure(bench).context("trace context and client calls")?;
    }
    let mut startup = Vec::new();
    if wanted("startup") {
        eprintln!("== start to first span");
        startup = startup::measure(bench).context("start to first span")?;
    }
    let mut resources = Vec::new();
    if wanted("resources") {
        eprintln!("== agent CPU and memory");
        resources = resources::measure(bench).context("agent resources")?;
    }
    let mut overhead = Vec::new();
    if wanted("overhead") {
        eprintln!("== overhead on the traced service");
        overhead = overhead::measure(bench).context("overhead")?;
    }
    let micro = criterion_dir
        .map(|dir| {
            criterion::collect(
                dir,
                &["pipeline/", "chain-", "alone-", "shape-", "sdk-filter-"],
            )
        })
        .unwrap_or_default();
    Ok(Results {
        settings: bench.settings.clone(),
        machine,
        overhead,
        probe_hits,
        trace_cost,
        replay,
        instructions,
        export,
        resources,
        startup,
        reload_ms,
        micro,
    })
}
