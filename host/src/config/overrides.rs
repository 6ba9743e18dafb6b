//! The flag layer: the command line wins over the file and the environment.
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroU64};
use std::path::PathBuf;

use super::schema::{AgentConfig, LogFormat};
use super::{values, ConfigError};
use crate::export::{self, Protocol};

/// Values given on the command line; `None` / empty: not given, the lower layers decide.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub exe: Vec<String>,
    pub port: Vec<NonZeroU16>,
    pub pid: Vec<NonZeroU32>,
    pub plugins_dir: Option<PathBuf>,
    pub record_spans: Option<PathBuf>,
    pub metrics_address: Option<SocketAddr>,
    pub log_level: Option<String>,
    pub log_format: Option<LogFormat>,
    /// Replaces every endpoint setting: the base endpoint, and no traces-specific one.
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: Option<Protocol>,
    pub scan_interval_ms: Option<NonZeroU64>,
    pub poll_interval_ms: Option<NonZeroU64>,
    pub wakeup_events: Option<NonZeroU64>,
    pub stats_interval_secs: Option<u64>,
    pub node_name: Option<String>,
}

impl Overrides {
    pub fn apply(&self, config: &mut AgentConfig) -> Result<(), ConfigError> {
        if !self.exe.is_empty() {
            for glob in &self.exe {
                values::check_glob(glob).map_err(|m| flag("--exe", glob, m))?;
            }
            config.targets.exe = self.exe.clone();
        }
        if !self.port.is_empty() {
            config.targets.port = self.port.clone();
        }
        if !self.pid.is_empty() {
            config.targets.pid = self.pid.clone();
        }
        if let Some(dir) = &self.plugins_dir {
            config.plugins.dir = Some(dir.clone());
        }
        if let Some(path) = &self.record_spans {
            config.plugins.record_spans = Some(path.clone());
        }
        if let Some(address) = self.metrics_address {
            config.telemetry.metrics_address = Some(address);
        }
        if let Some(level) = &self.log_level {
            values::check_log_level(level).map_err(|m| flag("--log-level", level, m))?;
            config.log.level = level.clone();
        }
        if let Some(format) = self.log_format {
            config.log.format = format;
        }
        if let Some(url) = &self.otlp_endpoint {
            export::check_endpoint(url).map_err(|m| flag("--otlp-endpoint", url, m))?;
            config.export.endpoint = Some(url.clone());
            config.export.endpoint_from = "--otlp-endpoint";
            config.export.traces_endpoint = None;
        }
        if let Some(protocol) = self.otlp_protocol {
            config.export.protocol = Some(protocol);
        }
        let capture = &mut config.capture;
        capture.scan_interval_ms = self.scan_interval_ms.unwrap_or(capture.scan_interval_ms);
        capture.poll_interval_ms = self.poll_interval_ms.unwrap_or(capture.poll_interval_ms);
        capture.wakeup_events = self.wakeup_events.unwrap_or(capture.wakeup_events);
        capture.stats_interval_secs = self
            .stats_interval_secs
            .unwrap_or(capture.stats_interval_secs);
        if let Some(node) = &self.node_name {
            config.resource.k8s_node_name = Some(node.clone());
        }
        Ok(())
    }
}

fn flag(flag: &'static str, value: &str, message: String) -> ConfigError {
    ConfigError::Flag {
        flag,
        value: value.to_owned(),
        message,
    }
}
