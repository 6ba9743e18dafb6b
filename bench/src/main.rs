//! `http-autoinstrument-bench`: runs every benchmark and writes the report. Use
//! `scripts/bench.sh`, which builds what this needs and passes the paths.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use http_autoinstrument_bench::report::{self, Invocation};
use http_autoinstrument_bench::{
    compare, compare_plugins, ensure_root, instructions, run, trace_cost, Bench, Settings, SECTIONS,
};

#[derive(Parser)]
#[command(about = "Benchmarks of http-autoinstrument; writes docs/benchmarks.md")]
struct Args {
    /// The agent binary (a release build).
    #[arg(long, required_unless_present_any = ["count_instructions_of", "compare_plugins_with"])]
    agent: Option<PathBuf>,
    /// The Go fixture server to trace.
    #[arg(long, required_unless_present_any = ["count_instructions_of", "compare_plugins_with"])]
    server: Option<PathBuf>,
    /// Directory with the built example plugins (filter.wasm, redact.wasm, ...).
    #[arg(long)]
    plugins: PathBuf,
    /// Criterion's output directory, to include the micro-benchmarks.
    #[arg(long)]
    criterion: Option<PathBuf>,
    /// Where the report goes; charts and results.json go to a directory of the same stem.
    #[arg(long, default_value = "docs/benchmarks.md")]
    out: PathBuf,
    /// Every step for about a second: shows the benchmarks work, measures nothing.
    #[arg(long)]
    smoke: bool,
    /// Run only these sections (replay, instructions, export, reload, hits, traces, startup,
    /// resources, overhead) and print their figures without writing the report.
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(SECTIONS))]
    only: Vec<String>,
    /// How the run was started, for the report.
    #[arg(long, default_value = "sudo scripts/bench.sh")]
    command: String,
    /// Instead of the benchmarks: compare the BPF run time per request of `--agent` (B) with
    /// this other build (A), side by side (see `compare`), and print it.
    #[arg(long, value_name = "AGENT")]
    compare_with: Option<PathBuf>,
    /// With `--compare-with`: every request carries a valid `traceparent` (the server programs'
    /// path with the header read and parsed).
    #[arg(long, requires = "compare_with")]
    compare_traceparent: bool,
    /// Instead of the benchmarks: compare the decode + 3 plugins replay with the plugins in
    /// `--plugins` (B) against those built in this other directory (A), in one process, taking
    /// turns (see `compare_plugins`), and print it. No root needed.
    #[arg(long, value_name = "DIR")]
    compare_plugins_with: Option<PathBuf>,
    /// Internal: replay one pipeline stage for `instructions` (which runs this under valgrind).
    #[arg(long, hide = true, value_name = "STAGE")]
    count_instructions_of: Option<String>,
    #[arg(long, hide = true, requires = "count_instructions_of")]
    plugin_cache: Option<PathBuf>,
    #[arg(long, hide = true, default_value_t = 8)]
    batches: usize,
}

/// The agent's allocator (host/src/main.rs), so the figures are the agent's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(stage) = &args.count_instructions_of {
        let cache = args
            .plugin_cache
            .as_deref()
            .context("--plugin-cache is missing")?;
        return instructions::child(stage, &args.plugins, cache, args.batches);
    }
    if let Some(a) = &args.compare_plugins_with {
        let (turns, batches) = if args.smoke { (2, 1) } else { (60, 20) };
        compare_plugins::compare_plugins(a, &args.plugins, turns, batches)?;
        return Ok(());
    }
    let (Some(agent), Some(server)) = (&args.agent, &args.server) else {
        bail!("--agent and --server are required");
    };
    let settings = if args.smoke {
        Settings::smoke()
    } else {
        Settings::full()
    };
    if let Some(a) = &args.compare_with {
        ensure_root()?;
        compare::compare(
            a,
            agent,
            server,
            // An even number, so both builds trace each service as often.
            2 * settings.rounds,
            settings.duration,
            settings.require_keeping_pace,
            if args.compare_traceparent {
                &[trace_cost::TRACEPARENT]
            } else {
                &[]
            },
        )?;
        return Ok(());
    }
    let bench = Bench::prepare(settings, agent, server, &args.plugins)?;
    let results = run(&bench, args.criterion.as_deref(), &args.only)?;
    if !args.only.is_empty() {
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let invocation = Invocation {
        command: args.command,
        date: http_autoinstrument::export::format_timestamp(now),
    };
    report::write(&results, &args.out, &invocation)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
