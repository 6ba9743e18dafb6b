//! The agent's configuration: a YAML file, then environment variables, then command-line flags,
//! each layer overriding the one before, key by key.
//!
//! - `schema`: the structure (the file's form), each value checked as it is read.
//! - `file`: the file, with file:line:column and key in errors.
//! - `env`: `HTTP_AUTOINSTRUMENT_*` and the standard `OTEL_EXPORTER_OTLP_*` variables.
//! - `overrides`: the flags.
//! - `values`: the checks the three layers share.
mod env;
mod file;
mod overrides;
mod schema;
mod values;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use env::{process_env, AGENT_VARIABLES, CONFIG_FILE as CONFIG_FILE_VAR};
pub use overrides::Overrides;
pub use schema::{
    AgentConfig, CaptureConfig, ExportSection, LogConfig, LogFormat, Propagation, ResourceConfig,
    Sampler, TargetsConfig, TelemetryConfig, TracesConfig,
};

use crate::attach::{ProbeMode, MAX_WAKEUP_EVENTS};
use crate::discover::Selector;
use crate::export::{self, ExportConfig, ExportLimits};
use crate::pipeline::AgentOptions;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {}: {message}", file.display())]
    Read { file: PathBuf, message: String },
    #[error("{}{}: {}{message}", file.display(), position(*line, *column),
        key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
    File {
        file: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        key: Option<String>,
        message: String,
    },
    #[error("environment variable {var}={value:?}: {message}")]
    Env {
        var: &'static str,
        value: String,
        message: String,
    },
    #[error("flag {flag} {value:?}: {message}")]
    Flag {
        flag: &'static str,
        value: String,
        message: String,
    },
    #[error(transparent)]
    Export(export::ConfigError),
    #[error(transparent)]
    Selector(crate::discover::SelectorError),
    #[error("{key} = {value:?}: {message}")]
    Invalid {
        key: &'static str,
        value: String,
        message: String,
    },
}

/// Scans closer together than this would spend the agent's time reading /proc.
pub const MIN_SCAN_INTERVAL_MS: u64 = 10;

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// The effective configuration: defaults, then `file`, then `vars`, then `flags`; checked as a
/// whole (see [`AgentConfig::check`]).
pub fn resolve(
    file: Option<&Path>,
    vars: &HashMap<String, String>,
    flags: &Overrides,
) -> Result<AgentConfig, ConfigError> {
    let mut config = match file {
        Some(path) => file::load(path)?,
        None => AgentConfig::default(),
    };
    env::apply(&mut config, vars)?;
    flags.apply(&mut config)?;
    config.check()?;
    Ok(config)
}

/// Reads and checks one configuration file on its own (`config check`). What depends on the
/// machine it runs on (processes, the plugins directory) is left to the agent's start.
pub fn check_file(path: &Path) -> Result<AgentConfig, ConfigError> {
    let config = file::load(path)?;
    config.check_settings()?;
    Ok(config)
}

/// [`check_file`] for text read elsewhere (e.g. a ConfigMap); `origin` names it in errors.
pub fn check_text(origin: &Path, text: &str) -> Result<AgentConfig, ConfigError> {
    let config = file::parse(origin, text)?;
    config.check_settings()?;
    Ok(config)
}

/// The file to read: `--config`, else `HTTP_AUTOINSTRUMENT_CONFIG`.
pub fn file_path(flag: Option<&Path>, vars: &HashMap<String, String>) -> Option<PathBuf> {
    flag.map(Path::to_owned).or_else(|| {
        vars.get(env::CONFIG_FILE)
            .filter(|v| !v.trim().is_empty())
            .map(PathBuf::from)
    })
}

impl AgentConfig {
    /// What can only be checked once every layer is applied: the settings together, then what
    /// they name on this machine.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.check_settings()?;
        self.check_on_this_machine()
    }

    /// Settings that cannot work together, whatever the machine.
    fn check_settings(&self) -> Result<(), ConfigError> {
        let wakeup = self.capture.wakeup_events.get();
        if wakeup > MAX_WAKEUP_EVENTS {
            return Err(ConfigError::Invalid {
                key: "capture.wakeup_events",
                value: wakeup.to_string(),
                message: format!(
                    "at most {MAX_WAKEUP_EVENTS}: the events ring buffer holds twice that, and \
                     a level it can barely reach would leave no room for what arrives while the \
                     agent wakes up (the default is 512)"
                ),
            });
        }
        let scan = self.capture.scan_interval_ms.get();
        if scan < MIN_SCAN_INTERVAL_MS {
            return Err(ConfigError::Invalid {
                key: "capture.scan_interval_ms",
                value: scan.to_string(),
                message: format!(
                    "at least {MIN_SCAN_INTERVAL_MS}: each scan reads every process's /proc \
                     entries, and a new executable is found within one scan anyway (the \
                     default is 250)"
                ),
            });
        }
        let (queue, batch) = (self.export.queue_capacity, self.export.max_batch_size);
        if queue < batch {
            return Err(ConfigError::Invalid {
                key: "export.queue_capacity",
                value: queue.to_string(),
                message: format!(
                    "smaller than export.max_batch_size ({batch}): a batch could never fill, \
                     and spans would be dropped while the queue holds less than one batch; \
                     raise export.queue_capacity to at least {batch} or lower \
                     export.max_batch_size"
                ),
            });
        }
        Ok(())
    }

    /// The processes and directories the settings name.
    fn check_on_this_machine(&self) -> Result<(), ConfigError> {
        for pid in &self.targets.pid {
            if !Path::new("/proc").join(pid.to_string()).exists() {
                return Err(ConfigError::Invalid {
                    key: "targets.pid",
                    value: pid.to_string(),
                    message: "no such process: give the id of a running process (`pgrep -f \
                              NAME`), or select the service by --exe or --port, which also \
                              follow its restarts"
                        .into(),
                });
            }
        }
        if let Some(dir) = &self.plugins.dir {
            if !dir.is_dir() {
                return Err(ConfigError::Invalid {
                    key: "plugins.dir",
                    value: dir.display().to_string(),
                    message: "not a directory: expected the directory holding the *.wasm plugins \
                              (create it, or leave plugins.dir out to run without plugins)"
                        .into(),
                });
            }
        }
        Ok(())
    }

    /// The sampler as the probes take it.
    pub fn sampler(&self) -> crate::attach::SamplerSettings {
        use http_autoinstrument_common::{ratio_bound, sampler};
        let (mode, parent_based) = match self.traces.sampler {
            Sampler::AlwaysOn => (sampler::ALWAYS_ON, false),
            Sampler::AlwaysOff => (sampler::ALWAYS_OFF, false),
            Sampler::Traceidratio => (sampler::TRACE_ID_RATIO, false),
            Sampler::ParentbasedAlwaysOn => (sampler::ALWAYS_ON, true),
            Sampler::ParentbasedAlwaysOff => (sampler::ALWAYS_OFF, true),
            Sampler::ParentbasedTraceidratio => (sampler::TRACE_ID_RATIO, true),
        };
        crate::attach::SamplerSettings {
            mode: mode
                | if parent_based {
                    sampler::PARENT_BASED
                } else {
                    0
                },
            bound: ratio_bound(self.traces.sampler_arg.unwrap_or(1.0)),
        }
    }

    pub fn selector(&self) -> Result<Selector, crate::discover::SelectorError> {
        let ports: Vec<u16> = self.targets.port.iter().map(|p| p.get()).collect();
        let pids: Vec<u32> = self.targets.pid.iter().map(|p| p.get()).collect();
        Selector::new(&self.targets.exe, &ports, &pids)
    }

    /// What the agent runs with. Removes the OTLP compression variables from the process
    /// environment when they mean none (see [`export::hide_compression_from_exporter`]): call
    /// it before any other thread starts.
    pub fn agent_options(&self, probe_mode: ProbeMode) -> Result<AgentOptions, ConfigError> {
        let capture = &self.capture;
        let options = AgentOptions {
            selector: self.selector().map_err(ConfigError::Selector)?,
            probe_mode,
            scan_interval: Duration::from_millis(capture.scan_interval_ms.get()),
            poll_interval: Duration::from_millis(capture.poll_interval_ms.get()),
            wakeup_events: capture.wakeup_events.get(),
            stats_interval: (capture.stats_interval_secs > 0)
                .then(|| Duration::from_secs(capture.stats_interval_secs)),
            export: self.export_config(),
            export_limits: self.export_limits(),
            plugins: self.plugins.clone(),
            metrics_address: self.telemetry.metrics_address,
            node_name: self.resource.k8s_node_name.clone(),
            sampler: self.sampler(),
            redact_query_parameters: self.traces.redact_query_parameters.clone(),
            propagate: self.traces.propagation == Propagation::On,
        };
        export::hide_compression_from_exporter(&options.export);
        Ok(options)
    }

    /// Where spans go (the `export` section, its variables and flags already applied).
    pub fn export_config(&self) -> ExportConfig {
        self.export.build()
    }

    pub fn export_limits(&self) -> ExportLimits {
        self.export.limits()
    }

    /// The configuration as YAML, in the file's form (header values redacted).
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
