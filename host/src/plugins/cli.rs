//! `http-autoinstrument plugin check|run`: plugin author tools (no root, no eBPF).

use std::fmt;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::json;

use super::chain::{DropCause, Outcome, PluginChain};
use super::check::ComponentReport;
use super::config::{settings_path, PluginSettings, PluginsConfig};
use super::engine::{content_hash, PluginEngine};
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
    /// Runs spans (JSON lines) through the plugins of a directory and prints, in input order,
    /// each span that comes out and each that was dropped, by which plugin and why. Exits with an
    /// error when a plugin of the directory did not load.
    Run {
        /// Plugins directory (`*.wasm` in file-name order, each with an optional `.toml`).
        #[arg(long)]
        plugins: PathBuf,
        /// Spans, one JSON object per line (see `http_autoinstrument::plugins::jsonl`).
        #[arg(long)]
        input: PathBuf,
        #[command(flatten)]
        limits: RunLimits,
    },
    /// Writes a new plugin project NAME (in the current directory, or --dir) that builds with
    /// `./build.sh` (its tests, then NAME.wasm): a sample plugin, a test, sample spans, and the
    /// SDK and interface copied from this agent.
    New {
        /// Project name: lowercase letters, digits and '-'.
        name: String,
        /// The plugin's language.
        #[arg(long)]
        lang: super::scaffold::Lang,
        /// Where to create the project directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

/// The agent's plugin options that `plugin run` takes too, with the agent's defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct RunLimits {
    /// Where compiled plugins are kept between runs (the agent's `plugins.cache_dir`); a large
    /// Python or JavaScript plugin compiles for seconds. Default: the user's cache directory.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every plugin afresh, keeping nothing.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// Time budget of one call into a plugin (the agent's `plugins.time_budget_ms`).
    #[arg(long, value_name = "MS")]
    pub time_budget_ms: Option<u64>,
    /// Memory cap of one plugin instance (the agent's `plugins.memory_limit_mib`).
    #[arg(long, value_name = "MIB")]
    pub memory_limit_mib: Option<u64>,
    /// Largest batch handed to a plugin in one call (the agent's `plugins.batch_size`).
    #[arg(long, value_name = "SPANS")]
    pub batch_size: Option<usize>,
}

impl RunLimits {
    /// The chain configuration for `dir` with these options over the agent's defaults.
    pub fn config(&self, dir: &Path) -> PluginsConfig {
        let defaults = PluginsConfig::default();
        PluginsConfig {
            dir: Some(dir.to_path_buf()),
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir.clone().or_else(default_cache_dir)
            },
            time_budget_ms: self.time_budget_ms.unwrap_or(defaults.time_budget_ms),
            memory_limit_mib: self.memory_limit_mib.unwrap_or(defaults.memory_limit_mib),
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            ..defaults
        }
    }
}

/// `$XDG_CACHE_HOME/http-autoinstrument/plugins`, or `~/.cache/...`; `None` without either.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(base.join("http-autoinstrument/plugins"))
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
        PluginCommand::New { name, lang, dir } => {
            let project = super::scaffold::new_project(&name, lang, &dir)?;
            writeln!(
                out,
                "wrote {} ({lang}): build it with {}/build.sh; README.md says what next",
                project.display(),
                project.display()
            )?;
        }
        PluginCommand::Run {
            plugins,
            input,
            limits,
        } => {
            let reader = std::io::BufReader::new(
                std::fs::File::open(&input)
                    .with_context(|| format!("cannot open {}", input.display()))?,
            );
            let summary = run(&limits.config(&plugins), reader, &mut out)?;
            eprint!("{summary}");
            if !summary.load_errors.is_empty() {
                let names: Vec<&str> = summary
                    .load_errors
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect();
                bail!(
                    "{} of the plugins did not load: {}",
                    names.len(),
                    names.join(", ")
                );
            }
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
            super::check::WORLD_EXPORT,
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
    let report = super::check::check_component(engine.engine(), &component)
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

/// `plugin run`: reads spans (JSON lines) from `input`, runs them through the plugins of
/// `config.dir`, and writes, in input order, `{"kept": span}` and
/// `{"dropped": span, "plugin": ..., "reason": ...}` lines.
pub fn run(config: &PluginsConfig, input: impl BufRead, mut out: impl Write) -> Result<RunSummary> {
    let Some(dir) = &config.dir else {
        bail!("no plugins directory given");
    };
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
    let chain = PluginChain::new(config.clone())?;
    let running = chain.plugin_names();
    let load_errors: Vec<(String, String)> = chain
        .stats()
        .into_iter()
        .filter(|(name, _)| !running.contains(name))
        .map(|(name, s)| (name, s.last_error.unwrap_or_default()))
        .collect();
    let spans_in = spans.len();
    let (mut spans_out, mut dropped) = (0, 0);
    for outcome in chain.process_outcomes(spans) {
        let line = match outcome {
            Outcome::Kept(span) => {
                spans_out += 1;
                json!({ "kept": span_record(&span) })
            }
            Outcome::Dropped(d) => {
                dropped += 1;
                let reason = match &d.cause {
                    DropCause::ByPlugin => "dropped by the plugin".to_string(),
                    DropCause::OnError(kind) => {
                        format!("plugin failed ({kind}) and its on-error policy is drop")
                    }
                };
                json!({ "dropped": span_record(&d.span), "plugin": d.plugin, "reason": reason })
            }
        };
        writeln!(out, "{line}")?;
    }
    Ok(RunSummary {
        spans_in,
        spans_out,
        dropped,
        plugins: chain.stats(),
        load_errors,
    })
}
