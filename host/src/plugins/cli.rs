//! `http-autoinstrument plugin check|run`: plugin author tools (no root, no eBPF).

use std::fmt;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::json;

use super::chain::{DropCause, PluginChain};
use super::config::{settings_path, PluginSettings, PluginsConfig};
use super::engine::{content_hash, PluginEngine};
use super::inspect::ComponentReport;
use super::instance::{LoadRequest, PluginVersion};
use super::jsonl::{parse_span, span_record};
use super::stats::{PluginStats, StatsSnapshot};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Checks that FILE is a plugin for this agent's WIT world and version, lists what it
    /// imports and what it would be granted, and runs its `init` with its settings file.
    Check {
        /// The plugin component (`NAME.wasm`).
        file: PathBuf,
        /// Settings file (default: `NAME.toml` beside the plugin, if present).
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    /// Runs spans (JSON lines) through the plugins of a directory and prints what comes out,
    /// and what was dropped, by which plugin and why.
    Run {
        /// Plugins directory (`*.wasm` in file-name order, each with an optional `.toml`).
        #[arg(long)]
        plugins: PathBuf,
        /// Spans, one JSON object per line (see `http_autoinstrument::plugins::jsonl`).
        #[arg(long)]
        input: PathBuf,
    },
}

/// Executes a `plugin` subcommand, writing results to `out` and the summary to stderr.
pub fn execute(command: PluginCommand, mut out: impl Write) -> Result<()> {
    match command {
        PluginCommand::Check { file, settings } => {
            let report = check_with_settings(&file, settings.as_deref())?;
            write!(out, "{report}")?;
            if let Err(e) = &report.init {
                bail!("{}: init failed: {e}", file.display());
            }
        }
        PluginCommand::Run { plugins, input } => {
            let reader = std::io::BufReader::new(
                std::fs::File::open(&input)
                    .with_context(|| format!("cannot open {}", input.display()))?,
            );
            let summary = run(&plugins, reader, &mut out)?;
            eprint!("{summary}");
        }
    }
    Ok(())
}

/// The result of `plugin check`.
#[derive(Debug)]
pub struct CheckReport {
    pub file: PathBuf,
    pub size: usize,
    pub component: ComponentReport,
    pub settings_file: Option<PathBuf>,
    pub settings: PluginSettings,
    /// `init` with the settings: `Err` holds the plugin's message.
    pub init: std::result::Result<(), String>,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: a span-processor plugin for {} ({} bytes)",
            self.file.display(),
            super::inspect::WORLD_EXPORT,
            self.size
        )?;
        write!(f, "{}", self.component)?;
        let g = &self.settings.grants;
        match &self.settings_file {
            Some(p) => writeln!(f, "settings: {}", p.display())?,
            None => writeln!(f, "settings: none (defaults)")?,
        }
        writeln!(f, "on-error: {:?}", self.settings.on_error)?;
        writeln!(
            f,
            "grants: env {:?}, read-only dirs {:?}, stdio {}",
            g.env, g.read_dirs, g.stdio
        )?;
        match &self.init {
            Ok(()) => writeln!(f, "init: ok"),
            Err(e) => writeln!(f, "init: FAILED: {e}"),
        }
    }
}

/// `plugin check FILE`, with the settings file beside it.
pub fn check(path: &Path) -> Result<CheckReport> {
    check_with_settings(path, None)
}

pub fn check_with_settings(path: &Path, settings: Option<&Path>) -> Result<CheckReport> {
    let wasm = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let settings_file = settings
        .map(Path::to_path_buf)
        .unwrap_or_else(|| settings_path(path));
    if settings.is_some() && !settings_file.is_file() {
        bail!("settings file {} does not exist", settings_file.display());
    }
    let (parsed, settings_bytes) = PluginSettings::load(&settings_file)?;
    let engine = Arc::new(PluginEngine::new(None)?);
    let component = engine
        .compile(&wasm)
        .with_context(|| format!("{} is not a valid plugin", path.display()))?;
    let report = super::inspect::inspect_component(engine.engine(), &component)
        .with_context(|| format!("{} is not a valid plugin", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let init = PluginVersion::load(
        &engine,
        &PluginsConfig::default(),
        LoadRequest {
            name: &name,
            wasm: &wasm,
            settings: parsed.clone(),
            key: (content_hash(&wasm), content_hash(&settings_bytes)),
            stats: Arc::new(PluginStats::default()),
        },
    )
    .map(|_| ())
    .map_err(|e| format!("{e:#}"));
    Ok(CheckReport {
        file: path.to_path_buf(),
        size: wasm.len(),
        component: report,
        settings_file: settings_file.is_file().then_some(settings_file),
        settings: parsed,
        init,
    })
}

/// The result of `plugin run`.
#[derive(Debug)]
pub struct RunSummary {
    pub spans_in: usize,
    pub spans_out: usize,
    pub dropped: usize,
    pub plugins: Vec<(String, StatsSnapshot)>,
    /// Plugins of the directory that failed to load, with the error.
    pub load_errors: Vec<(String, String)>,
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "spans: {} in, {} out, {} dropped",
            self.spans_in, self.spans_out, self.dropped
        )?;
        for (name, s) in &self.plugins {
            writeln!(
                f,
                "  {name}: calls {}, in {}, out {}, dropped {} (+{} on error), errors {}, {} us",
                s.calls,
                s.spans_in,
                s.spans_out,
                s.dropped_by_plugin,
                s.dropped_on_error,
                s.errors,
                s.call_nanos / 1000
            )?;
            if let Some(e) = &s.last_error {
                writeln!(f, "    last error: {e}")?;
            }
        }
        for (name, error) in &self.load_errors {
            writeln!(f, "  {name}: NOT LOADED: {error}")?;
        }
        Ok(())
    }
}

/// `plugin run`: reads spans (JSON lines) from `input`, runs them through the plugins in `dir`,
/// and writes `{"kept": span}` and `{"dropped": span, "plugin": ..., "reason": ...}` lines.
pub fn run(dir: &Path, input: impl BufRead, mut out: impl Write) -> Result<RunSummary> {
    if !dir.is_dir() {
        bail!("plugins directory {} does not exist", dir.display());
    }
    let mut spans = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.context("cannot read the input")?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        spans.push(parse_span(line).with_context(|| format!("input line {}", i + 1))?);
    }
    let chain = PluginChain::new(PluginsConfig {
        dir: Some(dir.to_path_buf()),
        ..PluginsConfig::default()
    })?;
    let load_errors: Vec<(String, String)> = chain
        .stats()
        .into_iter()
        .filter(|(name, _)| !chain.plugin_names().contains(name))
        .map(|(name, s)| (name, s.last_error.unwrap_or_default()))
        .collect();
    let spans_in = spans.len();
    let (kept, dropped) = chain.process_reporting(spans);
    for span in &kept {
        writeln!(out, "{}", json!({ "kept": span_record(span) }))?;
    }
    for d in &dropped {
        let reason = match &d.cause {
            DropCause::ByPlugin => "dropped by the plugin".to_string(),
            DropCause::OnError(kind) => {
                format!("plugin failed ({kind}) and its on-error policy is drop")
            }
        };
        writeln!(
            out,
            "{}",
            json!({ "dropped": span_record(&d.span), "plugin": d.plugin, "reason": reason })
        )?;
    }
    Ok(RunSummary {
        spans_in,
        spans_out: kept.len(),
        dropped: dropped.len(),
        plugins: chain.stats(),
        load_errors,
    })
}
