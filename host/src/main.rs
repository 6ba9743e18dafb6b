use std::io::IsTerminal;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroU64};
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use http_autoinstrument::attach::ProbeMode;
use http_autoinstrument::config::{self, AgentConfig, LogConfig, LogFormat, Overrides};
use http_autoinstrument::export::Protocol;
use http_autoinstrument::pipeline;
use http_autoinstrument::plugins::cli::PluginCommand;

/// OpenTelemetry traces for Go HTTP/HTTPS services, with no code change.
///
/// Run as root (or with CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH). Spans go to
/// the OTLP endpoint in OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
/// (protocol from OTEL_EXPORTER_OTLP_PROTOCOL), or to stdout when none is set. Settings come
/// from a YAML file (--config), then HTTP_AUTOINSTRUMENT_* / OTEL_* variables, then flags.
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
    Run(Box<RunArgs>),
    /// Show what the agent finds in a Go binary: version, probe offsets, struct offsets, and
    /// where each came from (symbols, the Go function table, DWARF, the table of layouts).
    Inspect {
        /// The executable to inspect.
        binary: PathBuf,
        /// Print the struct layouts the probes read, from the binary's DWARF, as JSON (what
        /// scripts/gen-go-layouts.py records per Go release).
        #[arg(long)]
        layouts: bool,
    },
    /// Plugin author tools (no root, no eBPF): check a plugin, run spans through plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Check a configuration file, or print the effective configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Args, Clone)]
struct RunArgs {
    /// YAML configuration file (also HTTP_AUTOINSTRUMENT_CONFIG). Variables override the file,
    /// flags override both.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Trace executables whose path matches this glob (repeatable).
    #[arg(long = "exe", value_name = "GLOB")]
    exe_globs: Vec<String>,
    /// Trace processes listening on this TCP port (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    ports: Vec<NonZeroU16>,
    /// Trace this process (repeatable). With no --exe, --port or --pid: every Go net/http process.
    #[arg(long = "pid", value_name = "PID")]
    pids: Vec<NonZeroU32>,
    /// For benchmarks: `count` attaches bare counting probes instead (overhead floor; no spans);
    /// `count-on-rets` the same with the request end on ServeHTTP's RETs; `bookkeeping` reads
    /// nothing of the traced process; `propagation-dry-run` runs propagation without its writes.
    #[arg(long, value_enum, default_value = "full")]
    probe_mode: ProbeMode,
    /// How often /proc is scanned for new and exited processes [default: 250].
    #[arg(long, value_name = "MS")]
    scan_interval_ms: Option<NonZeroU64>,
    /// How often the ring buffer is read when no wakeup came [default: 50].
    #[arg(long, value_name = "MS")]
    poll_interval_ms: Option<NonZeroU64>,
    /// Waiting events that wake the agent at once (probes never wake it per event) [default: 512].
    #[arg(long, value_name = "EVENTS")]
    wakeup_events: Option<NonZeroU64>,
    /// Directory of Wasm span-processor plugins (`*.wasm`, run in file-name order, hot-reloaded).
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// Record the spans built, before plugins, to this JSON-lines file for `plugin run --input`
    /// (bounded by plugins.record_spans_max_mib, default 64).
    #[arg(long, value_name = "FILE")]
    record_spans: Option<PathBuf>,
    /// Log the agent's counters this often (0: only at exit) [default: 30].
    #[arg(long, value_name = "SECONDS")]
    stats_interval_secs: Option<u64>,
    /// Serve /metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9464).
    #[arg(long, value_name = "IP:PORT")]
    metrics_address: Option<SocketAddr>,
    /// Log filter: trace, debug, info, warn, error, or directives [default: info].
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// Log format [default: text].
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// OTLP base endpoint; replaces every endpoint set in the file or the OTEL_* variables.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// OTLP protocol: grpc or http/protobuf.
    #[arg(long, value_name = "PROTOCOL", value_enum)]
    otlp_protocol: Option<Protocol>,
    /// `k8s.node.name` added to every traced process's resource.
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// Print the effective configuration (YAML, header values hidden) and exit.
    #[arg(long)]
    print_config: bool,
}

impl RunArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            exe: self.exe_globs.clone(),
            port: self.ports.clone(),
            pid: self.pids.clone(),
            plugins_dir: self.plugins.clone(),
            record_spans: self.record_spans.clone(),
            metrics_address: self.metrics_address,
            log_level: self.log_level.clone(),
            log_format: self.log_format,
            otlp_endpoint: self.otlp_endpoint.clone(),
            otlp_protocol: self.otlp_protocol,
            scan_interval_ms: self.scan_interval_ms,
            poll_interval_ms: self.poll_interval_ms,
            wakeup_events: self.wakeup_events,
            stats_interval_secs: self.stats_interval_secs,
            node_name: self.node_name.clone(),
        }
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file: every key, type and value, with file:line:column on error.
    Check { file: PathBuf },
    /// Print the effective configuration of the file (if any) and the environment.
    Print {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn init_logging(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(&log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Logging for the tools (not the agent): the log variables only, no configuration file.
fn init_tool_logging() {
    let vars = config::process_env();
    let log = config::resolve(None, &vars, &Overrides::default())
        .map(|c| c.log)
        .unwrap_or_default();
    init_logging(&log);
}

fn effective_config(args: &RunArgs) -> Result<AgentConfig> {
    let vars = config::process_env();
    let file = config::file_path(args.config.as_deref(), &vars);
    Ok(config::resolve(file.as_deref(), &vars, &args.overrides())?)
}

fn run(args: RunArgs) -> Result<()> {
    let config = effective_config(&args)?;
    if args.print_config {
        print!("{}", config.to_yaml());
        return Ok(());
    }
    init_logging(&config.log);
    let options = config.agent_options(args.probe_mode)?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(pipeline::run(options))
}

fn config_command(command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::Check { file } => {
            config::check_file(&file)?;
            println!("{}: ok", file.display());
        }
        ConfigCommand::Print { config } => {
            let vars = config::process_env();
            let file = config::file_path(config.as_deref(), &vars);
            print!(
                "{}",
                config::resolve(file.as_deref(), &vars, &Overrides::default())?.to_yaml()
            );
        }
    }
    Ok(())
}

/// The pipeline allocates per span and attribute; mimalloc is much faster than glibc's malloc
/// at that (see Cargo.toml). Built to commit arena memory only as it is used
/// (`.cargo/config.toml`): with the default eager commit the agent kept the memory of plugin
/// compilation resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(*args),
        Some(Command::Inspect { binary, layouts }) => {
            init_tool_logging();
            if layouts {
                http_autoinstrument::inspect::print_layouts(&binary)
            } else {
                http_autoinstrument::inspect::print_report(&binary)
            }
        }
        Some(Command::Plugin { command }) => {
            init_tool_logging();
            http_autoinstrument::plugins::cli::execute(command, std::io::stdout().lock())
        }
        Some(Command::Config { command }) => config_command(command),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
