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
    AgentConfig, CaptureConfig, ExportCompression, ExportProtocol, ExportSection, LogConfig,
    LogFormat, Propagation, ResourceConfig, Sampler, TargetsConfig, TelemetryConfig, TracesConfig,
};

use crate::attach::MAX_WAKEUP_EVENTS;
use crate::discover::Selector;
use crate::export::{self, ExportConfig, ExportLimits};

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
    #[error("{key} = {value:?}: {message}")]
    Invalid {
        key: &'static str,
        value: String,
        message: String,
    },
}

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
/// machine it runs on (the plugins directory) is left to the agent's start.
pub fn check_file(path: &Path) -> Result<AgentConfig, ConfigError> {
    let config = file::load(path)?;
    config.export_config()?;
    Ok(config)
}

/// [`check_file`] for text read elsewhere (e.g. a ConfigMap); `origin` names it in errors.
pub fn check_text(origin: &Path, text: &str) -> Result<AgentConfig, ConfigError> {
    let config = file::parse(origin, text)?;
    config.export_config()?;
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
    /// What can only be checked once every layer is applied.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.export_config()?;
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

    /// The `export` section through the export module's own rules (the same as the `OTEL_*`
    /// variables', which is what the section stands for).
    pub fn export_config(&self) -> Result<ExportConfig, ConfigError> {
        let section = &self.export;
        let mut vars = HashMap::new();
        let mut set = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                vars.insert(name.to_owned(), value);
            }
        };
        set(export::ENDPOINT, section.endpoint.clone());
        set(export::TRACES_ENDPOINT, section.traces_endpoint.clone());
        set(
            export::PROTOCOL,
            section.protocol.map(|p| p.as_str().to_owned()),
        );
        set(
            export::HEADERS,
            (!section.headers.is_empty()).then(|| {
                section
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{k}={}", values::percent_encode(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            }),
        );
        set(
            export::TIMEOUT,
            section.timeout_ms.map(|ms| ms.get().to_string()),
        );
        set(
            export::COMPRESSION,
            section.compression.map(|c| c.as_str().to_owned()),
        );
        ExportConfig::from_env_map(&vars).map_err(ConfigError::Export)
    }

    pub fn export_limits(&self) -> ExportLimits {
        ExportLimits {
            queue_capacity: self.export.queue_capacity.get(),
            max_batch_size: self.export.max_batch_size.get(),
            max_batch_delay: Duration::from_millis(self.export.max_batch_delay_ms),
            ..ExportLimits::default()
        }
    }

    /// The configuration as YAML, in the file's form (header values redacted).
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
