//! The environment layer: `HTTP_AUTOINSTRUMENT_*` and the standard `OTEL_EXPORTER_OTLP_*`
//! variables, applied over the file. Reads a map, not the process, so tests are hermetic.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32};
use std::path::PathBuf;
use std::str::FromStr;

use super::schema::{AgentConfig, LogFormat, Propagation, Sampler};
use super::{values, ConfigError};

pub const CONFIG_FILE: &str = "HTTP_AUTOINSTRUMENT_CONFIG";
pub const EXE: &str = "HTTP_AUTOINSTRUMENT_EXE";
pub const PORT: &str = "HTTP_AUTOINSTRUMENT_PORT";
pub const PID: &str = "HTTP_AUTOINSTRUMENT_PID";
pub const PLUGINS_DIR: &str = "HTTP_AUTOINSTRUMENT_PLUGINS";
pub const METRICS_ADDRESS: &str = "HTTP_AUTOINSTRUMENT_METRICS_ADDRESS";
pub const LOG_LEVEL: &str = "HTTP_AUTOINSTRUMENT_LOG";
pub const LOG_FORMAT: &str = "HTTP_AUTOINSTRUMENT_LOG_FORMAT";
pub const NODE_NAME: &str = "HTTP_AUTOINSTRUMENT_NODE_NAME";
/// The OpenTelemetry SDKs' sampler variables.
pub const TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
pub const TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
pub const PROPAGATION: &str = "HTTP_AUTOINSTRUMENT_PROPAGATION";

/// The variables this layer reads (for `config print` and the documentation).
pub const AGENT_VARIABLES: &[&str] = &[
    CONFIG_FILE,
    EXE,
    PORT,
    PID,
    PLUGINS_DIR,
    METRICS_ADDRESS,
    LOG_LEVEL,
    LOG_FORMAT,
    NODE_NAME,
    TRACES_SAMPLER,
    TRACES_SAMPLER_ARG,
    PROPAGATION,
];

/// The variables of this process the configuration reads.
pub fn process_env() -> HashMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("OTEL_") || k.starts_with("HTTP_AUTOINSTRUMENT_"))
        .collect()
}

/// Applies the variables set (non-empty) in `vars` over `config`.
pub fn apply(config: &mut AgentConfig, vars: &HashMap<String, String>) -> Result<(), ConfigError> {
    let get = |name: &'static str| {
        vars.get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(|v| (name, v))
    };
    if let Some((var, v)) = get(EXE) {
        let globs: Vec<String> = list(v).map(str::to_owned).collect();
        for glob in &globs {
            values::check_glob(glob).map_err(|m| invalid(var, v, m))?;
        }
        config.targets.exe = globs;
    }
    if let Some((var, v)) = get(PORT) {
        config.targets.port = list(v)
            .map(|p| parse::<NonZeroU16>(var, p, "a TCP port from 1 to 65535"))
            .collect::<Result<_, _>>()?;
    }
    if let Some((var, v)) = get(PID) {
        config.targets.pid = list(v)
            .map(|p| parse::<NonZeroU32>(var, p, "a process id (a positive number)"))
            .collect::<Result<_, _>>()?;
    }
    if let Some((_, v)) = get(PLUGINS_DIR) {
        config.plugins.dir = Some(PathBuf::from(v));
    }
    if let Some((var, v)) = get(METRICS_ADDRESS) {
        config.telemetry.metrics_address = Some(parse::<SocketAddr>(
            var,
            v,
            "IP:PORT, e.g. 0.0.0.0:9464 or 127.0.0.1:9464",
        )?);
    }
    if let Some((var, v)) = get(LOG_LEVEL) {
        values::check_log_level(v).map_err(|m| invalid(var, v, m))?;
        config.log.level = v.to_owned();
    }
    if let Some((var, v)) = get(LOG_FORMAT) {
        config.log.format = match v {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(invalid(var, v, "expected \"text\" or \"json\"".into())),
        };
    }
    if let Some((_, v)) = get(NODE_NAME) {
        config.resource.k8s_node_name = Some(v.to_owned());
    }
    if let Some((var, v)) = get(TRACES_SAMPLER) {
        config.traces.sampler = Sampler::parse(v)
            .ok_or_else(|| invalid(var, v, format!("expected one of {}", Sampler::NAMES)))?;
    }
    if let Some((var, v)) = get(TRACES_SAMPLER_ARG) {
        let ratio = parse::<f64>(var, v, "a ratio from 0 to 1, e.g. 0.25")?;
        values::check_ratio(ratio).map_err(|m| invalid(var, v, m))?;
        config.traces.sampler_arg = Some(ratio);
    }
    if let Some((var, v)) = get(PROPAGATION) {
        config.traces.propagation =
            Propagation::parse(v).ok_or_else(|| invalid(var, v, "expected on or off".into()))?;
    }
    config.export.apply_env(vars).map_err(ConfigError::Export)
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse<T: FromStr>(var: &'static str, value: &str, expected: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(var, value, format!("expected {expected}")))
}

fn invalid(var: &'static str, value: &str, message: String) -> ConfigError {
    ConfigError::Env {
        var,
        value: value.to_owned(),
        message,
    }
}
