//! Settings of the plugin chain (agent-wide) and of each plugin (its settings file).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Agent-wide plugin settings (a section of the agent's configuration).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// Directory of `*.wasm` plugins (each with an optional `NAME.toml` beside it).
    /// `None`: no plugins, spans pass untouched.
    pub dir: Option<PathBuf>,
    /// Wall-clock budget of one call into a plugin, milliseconds.
    pub time_budget_ms: u64,
    /// Linear memory cap of one plugin instance, MiB.
    pub memory_limit_mib: u64,
    /// Largest batch handed to a plugin in one call; bigger batches are split.
    pub batch_size: usize,
    /// Attribute values, span names and status messages a plugin writes are truncated to this.
    pub max_value_bytes: usize,
    /// Attribute keys longer than this are rejected.
    pub max_key_bytes: usize,
    /// A plugin cannot grow a span beyond this many attributes.
    pub max_attributes_per_span: usize,
    /// Consecutive failed batches after which a plugin is suspended.
    pub suspend_after_failures: u32,
    /// Longest suspension, seconds (the backoff doubles from one second up to this).
    pub max_suspension_secs: u64,
    /// Where compiled plugins are cached across restarts; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Records the spans the agent builds, before any plugin, to this JSON-lines file (what
    /// `plugin run --input` takes); `None`: no recording. Works with or without plugins.
    pub record_spans: Option<PathBuf>,
    /// Bound of the recording, MiB: recording stops there.
    pub record_spans_max_mib: u64,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: None,
            time_budget_ms: 100,
            memory_limit_mib: 64,
            batch_size: 512,
            max_value_bytes: 4096,
            max_key_bytes: 256,
            max_attributes_per_span: 128,
            suspend_after_failures: 5,
            max_suspension_secs: 300,
            cache_dir: None,
            record_spans: None,
            record_spans_max_mib: 64,
        }
    }
}

/// What happens to a batch when a plugin fails on it (trap, timeout, out of memory, error,
/// invalid output) or is suspended.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Spans continue to the next plugin as if this one did not exist (fail open).
    Pass,
    /// Spans are dropped and counted (fail closed). The default: a plugin that redacts secrets
    /// must not let an unredacted span through because it crashed.
    #[default]
    Drop,
}

/// Capabilities a plugin gets beyond the `host` interface. Nothing by default.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grants {
    /// Environment variables the plugin can read (WASI `environment`), by name.
    pub env: Vec<String>,
    /// Host directories the plugin can read (WASI filesystem), mounted read-only at the same path.
    pub read_dirs: Vec<PathBuf>,
    /// The plugin's stdout/stderr go to the agent's stderr (otherwise discarded).
    pub stdio: bool,
}

/// A plugin's settings file, `NAME.toml` beside `NAME.wasm`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginSettings {
    pub on_error: OnError,
    /// Overrides `PluginsConfig::time_budget_ms` for this plugin.
    pub time_budget_ms: Option<u64>,
    /// Overrides `PluginsConfig::memory_limit_mib` for this plugin.
    pub memory_limit_mib: Option<u64>,
    pub grants: Grants,
    /// The plugin's own settings, handed to its `init` as JSON.
    pub settings: toml::Table,
}

impl PluginSettings {
    /// Reads `path`; a missing file means defaults.
    pub fn load(path: &Path) -> Result<(PluginSettings, Vec<u8>)> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let text = std::str::from_utf8(&bytes)
            .with_context(|| format!("{} is not UTF-8", path.display()))?;
        let settings = toml::from_str(text).with_context(|| {
            format!(
                "invalid plugin settings file {} (keys: on-error = \"pass\"|\"drop\", \
                 time-budget-ms, memory-limit-mib, [grants], [settings])",
                path.display()
            )
        })?;
        Ok((settings, bytes))
    }

    /// The `[settings]` table as the JSON text `init` receives.
    pub fn init_json(&self) -> String {
        serde_json::to_string(&self.settings).unwrap_or_else(|_| "{}".into())
    }
}

/// `dir/NAME.toml` for `dir/NAME.wasm`.
pub fn settings_path(wasm: &Path) -> PathBuf {
    wasm.with_extension("toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_file_parses_policy_grants_and_plugin_settings() {
        let s: PluginSettings = toml::from_str(
            "on-error = \"pass\"\ntime-budget-ms = 5\n[grants]\nenv = [\"POD\"]\n[settings]\npaths = [\"/x\"]\n",
        )
        .unwrap();
        assert_eq!(s.on_error, OnError::Pass);
        assert_eq!(s.time_budget_ms, Some(5));
        assert_eq!(s.grants.env, ["POD"]);
        assert_eq!(s.init_json(), r#"{"paths":["/x"]}"#);
    }

    #[test]
    fn defaults_fail_closed_and_grant_nothing() {
        let s = PluginSettings::default();
        assert_eq!(s.on_error, OnError::Drop);
        assert_eq!(s.grants, Grants::default());
        assert_eq!(s.init_json(), "{}");
    }

    #[test]
    fn unknown_keys_are_refused_with_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("10-x.toml");
        std::fs::write(&path, "on_error = \"pass\"\n").unwrap();
        let err = format!("{:#}", PluginSettings::load(&path).unwrap_err());
        assert!(
            err.contains("10-x.toml") && err.contains("on-error"),
            "{err}"
        );
    }

    #[test]
    fn chain_config_deserializes_with_defaults() {
        let c: PluginsConfig = toml::from_str("dir = \"/p\"\nbatch_size = 64\n").unwrap();
        assert_eq!(c.dir, Some(PathBuf::from("/p")));
        assert_eq!(c.batch_size, 64);
        assert_eq!(c.time_budget_ms, PluginsConfig::default().time_budget_ms);
    }
}
