//! The agent's configuration, as the YAML file spells it (see `deployments/config.example.yaml`).
//!
//! Every value is checked while it is deserialized, so a bad value is reported with the file's
//! line and column. Environment variables and flags fill the same structure (see `env.rs` and
//! `overrides.rs`), so one form describes the effective configuration whatever its source.
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroU64};

use serde::{Deserialize, Deserializer, Serialize};

use super::values;
pub use crate::export::ExportSection;
use crate::plugins::PluginsConfig;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    pub targets: TargetsConfig,
    pub export: ExportSection,
    pub plugins: PluginsConfig,
    pub telemetry: TelemetryConfig,
    pub log: LogConfig,
    pub capture: CaptureConfig,
    pub resource: ResourceConfig,
    pub traces: TracesConfig,
}

/// How traces are sampled and what of a URL is kept, as the OpenTelemetry SDKs do it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TracesConfig {
    /// `OTEL_TRACES_SAMPLER`, decided once where a trace starts and followed by all its spans.
    pub sampler: Sampler,
    /// `OTEL_TRACES_SAMPLER_ARG`: the ratio of the `*traceidratio` samplers, 0 to 1 (default 1).
    #[serde(deserialize_with = "ratio")]
    pub sampler_arg: Option<f64>,
    /// Query parameters whose values become `REDACTED` in `url.query` and `url.full`, beside
    /// those the semantic conventions name (`AWSAccessKeyId`, `Signature`, `sig`,
    /// `X-Goog-Signature`).
    pub redact_query_parameters: Vec<String>,
    /// Whether client calls carry their trace context to the next service: `traceparent`
    /// written into outgoing HTTP/1.x and HTTP/2 requests by the probes. On by default, where the
    /// kernel allows it (a locked-down kernel forbids it: the agent then logs why and goes on
    /// without); `off` writes nothing into traced processes.
    pub propagation: Propagation,
}

/// `traces.propagation`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Propagation {
    #[default]
    On,
    Off,
}

impl Propagation {
    pub fn parse(value: &str) -> Option<Propagation> {
        match value {
            "on" => Some(Propagation::On),
            "off" => Some(Propagation::Off),
            _ => None,
        }
    }
}

/// The samplers of `OTEL_TRACES_SAMPLER`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    Traceidratio,
    #[default]
    ParentbasedAlwaysOn,
    ParentbasedAlwaysOff,
    ParentbasedTraceidratio,
}

impl Sampler {
    pub const NAMES: &'static str = "always_on, always_off, traceidratio, parentbased_always_on, \
                                     parentbased_always_off, parentbased_traceidratio";

    pub fn parse(name: &str) -> Option<Sampler> {
        Some(match name {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::Traceidratio,
            "parentbased_always_on" => Sampler::ParentbasedAlwaysOn,
            "parentbased_always_off" => Sampler::ParentbasedAlwaysOff,
            "parentbased_traceidratio" => Sampler::ParentbasedTraceidratio,
            _ => return None,
        })
    }
}

fn ratio<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let value = Option::<f64>::deserialize(d)?;
    if let Some(v) = value {
        values::check_ratio(v).map_err(serde::de::Error::custom)?;
    }
    Ok(value)
}

/// Which processes are traced. All empty: every Go `net/http` server.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TargetsConfig {
    /// Executable path globs.
    #[serde(deserialize_with = "globs")]
    pub exe: Vec<String>,
    /// Listening TCP ports.
    pub port: Vec<NonZeroU16>,
    pub pid: Vec<NonZeroU32>,
}

/// The agent's own HTTP endpoint: `/metrics`, `/healthz`, `/readyz`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `IP:PORT` to serve on; none: no endpoint.
    pub metrics_address: Option<SocketAddr>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter: a level (`info`) or directives (`info,http_autoinstrument=debug`).
    #[serde(deserialize_with = "log_level")]
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// How the agent watches processes and reads events.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// How often /proc is scanned for new and exited processes.
    pub scan_interval_ms: NonZeroU64,
    /// How often the ring buffer is read when no wakeup came.
    pub poll_interval_ms: NonZeroU64,
    /// Waiting events that wake the agent at once. A wakeup costs the traced service a trap of
    /// its own, so it comes once per batch; below it the agent finds the events on its next poll.
    pub wakeup_events: NonZeroU64,
    /// Log the counters this often; 0: only at exit.
    pub stats_interval_secs: u64,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            scan_interval_ms: NonZeroU64::new(250).unwrap_or(NonZeroU64::MIN),
            poll_interval_ms: NonZeroU64::new(50).unwrap_or(NonZeroU64::MIN),
            wakeup_events: NonZeroU64::new(512).unwrap_or(NonZeroU64::MIN),
            stats_interval_secs: 30,
        }
    }
}

/// Attributes the agent adds to every traced process's resource.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceConfig {
    /// `k8s.node.name` (in Kubernetes, from the downward API's `spec.nodeName`).
    #[serde(deserialize_with = "non_empty")]
    pub k8s_node_name: Option<String>,
}

fn globs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let globs = Vec::<String>::deserialize(d)?;
    for glob in &globs {
        values::check_glob(glob).map_err(serde::de::Error::custom)?;
    }
    Ok(globs)
}

fn log_level<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let level = String::deserialize(d)?;
    values::check_log_level(&level).map_err(serde::de::Error::custom)?;
    Ok(level)
}

fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
        return Err(serde::de::Error::custom(
            "empty string: expected a name, or leave the key out",
        ));
    }
    Ok(value)
}
