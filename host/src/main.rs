use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use http_autoinstrument::attach::ProbeMode;
use http_autoinstrument::discover::Selector;
use http_autoinstrument::export::ExportConfig;
use http_autoinstrument::pipeline::{self, AgentOptions};
use http_autoinstrument::plugins::cli::PluginCommand;
use http_autoinstrument::plugins::PluginsConfig;

/// OpenTelemetry traces for Go HTTP/HTTPS services, with no code change.
///
/// Run as root (or with CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH). Spans go to
/// the OTLP endpoint in OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
/// (protocol from OTEL_EXPORTER_OTLP_PROTOCOL), or to stdout when none is set.
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Trace Go services (the default).
    Run(RunArgs),
    /// Show what the agent finds in a Go binary: version, probe offsets, struct offsets.
    Inspect {
        /// The executable to inspect.
        binary: PathBuf,
    },
    /// Plugin author tools (no root, no eBPF): check a plugin, run spans through plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Trace executables whose path matches this glob (repeatable).
    #[arg(long = "exe", value_name = "GLOB")]
    exe_globs: Vec<String>,
    /// Trace processes listening on this TCP port (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    ports: Vec<u16>,
    /// Trace this process (repeatable). With no --exe, --port or --pid: every Go net/http process.
    #[arg(long = "pid", value_name = "PID")]
    pids: Vec<u32>,
    /// `count` attaches bare counting probes instead (overhead floor for benchmarks; no spans).
    #[arg(long, value_enum, default_value = "full")]
    probe_mode: ProbeMode,
    /// How often /proc is scanned for new and exited processes.
    #[arg(long, default_value = "250", value_name = "MS")]
    scan_interval_ms: u64,
    /// How often the ring buffer is read when no wakeup came.
    #[arg(long, default_value = "50", value_name = "MS")]
    poll_interval_ms: u64,
    /// Waiting events that wake the agent at once (probes never wake it per event).
    #[arg(long, default_value = "64", value_name = "EVENTS")]
    wakeup_events: u64,
    /// Directory of Wasm span-processor plugins (`*.wasm`, run in file-name order, hot-reloaded).
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// Log the agent's counters this often (0: only at exit).
    #[arg(long, default_value = "30", value_name = "SECONDS")]
    stats_interval_secs: u64,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HTTP_AUTOINSTRUMENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(args: RunArgs) -> Result<()> {
    let selector = Selector::new(&args.exe_globs, &args.ports, &args.pids)?;
    let export = ExportConfig::from_process_env()?;
    let options = AgentOptions {
        selector,
        probe_mode: args.probe_mode,
        scan_interval: Duration::from_millis(args.scan_interval_ms.max(10)),
        poll_interval: Duration::from_millis(args.poll_interval_ms.max(1)),
        wakeup_events: args.wakeup_events,
        stats_interval: (args.stats_interval_secs > 0)
            .then(|| Duration::from_secs(args.stats_interval_secs)),
        export,
        plugins: PluginsConfig {
            dir: args.plugins,
            ..PluginsConfig::default()
        },
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(pipeline::run(options))
}

fn main() {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(args),
        Some(Command::Inspect { binary }) => http_autoinstrument::inspect::print_report(&binary),
        Some(Command::Plugin { command }) => {
            http_autoinstrument::plugins::cli::execute(command, std::io::stdout().lock())
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
