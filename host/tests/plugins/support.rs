//! Shared helpers: where the built plugins are, a plugins directory per test, spans.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_autoinstrument::plugins::{PluginChain, PluginsConfig};
use http_autoinstrument::span::{Attribute, AttributeValue, Resource, Span, SpanKind, SpanStatus};

#[path = "../support/plugins.rs"]
mod plugin_files;
#[path = "../support/skip.rs"]
pub mod skip;

pub use plugin_files::built_plugin as built;

/// Fetches several built plugins; `None` if any is missing.
pub fn built_all<const N: usize>(names: [&str; N]) -> Option<[PathBuf; N]> {
    let paths: Vec<PathBuf> = names.iter().map(|n| built(n)).collect::<Option<_>>()?;
    paths.try_into().ok()
}

/// A temporary plugins directory.
pub struct PluginDir {
    pub dir: tempfile::TempDir,
}

impl PluginDir {
    pub fn new() -> Self {
        PluginDir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Installs `wasm` as `file_name` with an optional settings file.
    pub fn install(&self, wasm: &Path, file_name: &str, settings: Option<&str>) -> &Self {
        std::fs::copy(wasm, self.path().join(file_name)).expect("copy plugin");
        if let Some(settings) = settings {
            let toml = Path::new(file_name).with_extension("toml");
            std::fs::write(self.path().join(toml), settings).expect("write settings");
        }
        self
    }

    pub fn write(&self, file_name: &str, bytes: &[u8]) {
        std::fs::write(self.path().join(file_name), bytes).expect("write file");
    }

    pub fn config(&self) -> PluginsConfig {
        PluginsConfig {
            dir: Some(self.path().to_path_buf()),
            ..PluginsConfig::default()
        }
    }

    pub fn chain(&self) -> Arc<PluginChain> {
        PluginChain::new(self.config()).expect("chain")
    }
}

pub fn resource() -> Arc<Resource> {
    Arc::new(Resource {
        attributes: vec![Attribute::new("service.name", "shop")],
    })
}

/// A server span for `GET path?query`.
pub fn http_span(resource: &Arc<Resource>, path: &str, query: Option<&str>) -> Span {
    let mut attributes = vec![
        Attribute::new("http.request.method", "GET"),
        Attribute::new("url.path", path.to_owned()),
        Attribute::new("url.scheme", "http"),
        Attribute::new("http.response.status_code", 200i64),
        Attribute::new("server.address", "shop.local"),
        Attribute::new("server.port", 8080i64),
        Attribute::new("client.address", "10.0.0.7"),
        Attribute::new("user_agent.original", "curl/8.5.0"),
        Attribute::new("network.protocol.version", "1.1"),
    ];
    if let Some(q) = query {
        attributes.push(Attribute::new("url.query", q.to_owned()));
    }
    Span {
        trace_id: [3; 16],
        span_id: [4; 8],
        parent_span_id: None,
        name: "GET".into(),
        kind: SpanKind::Server,
        start_unix_nanos: 1_700_000_000_000_000_000,
        end_unix_nanos: 1_700_000_000_002_000_000,
        status: SpanStatus::Unset,
        attributes,
        resource: resource.clone(),
    }
}

pub fn with_attr(mut span: Span, key: &str, value: impl Into<AttributeValue>) -> Span {
    span.set_attribute(key, value);
    span
}

pub fn str_attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match span.attribute(key) {
        Some(AttributeValue::Str(s)) => Some(s),
        _ => None,
    }
}
