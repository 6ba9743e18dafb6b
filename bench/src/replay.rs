//! Pipeline throughput without the kernel: ring-buffer records replayed through the agent's own
//! decode, span, plugin and OTLP-encoding code on the calling thread, in batches as the ring
//! reader hands them over.
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use http_autoinstrument::export::sdk_batches;
use http_autoinstrument::plugins::{PluginChain, PluginsConfig};
use http_autoinstrument::span::Span;
use http_autoinstrument_common::HttpServerEvent;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use prost::Message;
use serde::Serialize;

use crate::workload::{records, SpanBuilder};

/// The example plugins of the "three plugins" configuration, in chain order.
pub const THREE_PLUGINS: [&str; 3] = ["filter", "redact", "route-template"];

/// Events per batch: what one drain of a busy ring buffer gives the span stage.
pub const BATCH: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Stage {
    /// Record -> event -> request -> span.
    Decode,
    /// ... -> filter -> redact -> route-template.
    Plugins,
    /// ... -> SDK span data -> OTLP protobuf request bytes.
    OtlpEncoding,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Decode, Stage::Plugins, Stage::OtlpEncoding];

    /// Short name for benchmark ids and file names.
    pub fn slug(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Plugins => "plugins",
            Stage::OtlpEncoding => "otlp",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Plugins => "decode + 3 plugins",
            Stage::OtlpEncoding => "decode + 3 plugins + OTLP encoding",
        }
    }
}

/// Copies the three example plugins into a fresh plugins directory, named for chain order.
pub fn three_plugin_dir(built_plugins: &Path) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for (i, name) in THREE_PLUGINS.iter().enumerate() {
        let from = built_plugins.join(format!("{name}.wasm"));
        ensure!(
            from.is_file(),
            "{} is missing: run scripts/build-plugins.sh",
            from.display()
        );
        std::fs::copy(&from, dir.path().join(format!("{}0-{name}.wasm", i + 1)))?;
    }
    Ok(dir)
}

/// The chain of the plugins in `dir`; compiled code is kept in `cache` when one is given.
pub fn load_chain(dir: &Path, cache: Option<&Path>) -> Result<Arc<PluginChain>> {
    let chain = PluginChain::new(PluginsConfig {
        dir: Some(dir.to_path_buf()),
        cache_dir: cache.map(Path::to_path_buf),
        ..PluginsConfig::default()
    })?;
    ensure!(
        chain.plugin_names().len() == THREE_PLUGINS.len(),
        "plugins failed to load: {:?}",
        chain.stats()
    );
    Ok(chain)
}

/// The OTLP request bodies opentelemetry-otlp would send for `spans`, with the work the agent
/// does for one export attempt (it converts the spans it keeps for a retry).
pub fn encode_otlp(spans: Vec<Span>) -> Vec<Vec<u8>> {
    sdk_batches(spans)
        .into_iter()
        .map(|(resource, data)| {
            let resource = ResourceAttributesWithSchema::from(&resource);
            ExportTraceServiceRequest {
                resource_spans: group_spans_by_resource_and_scope(data, &resource),
            }
            .encode_to_vec()
        })
        .collect()
}

/// Replays a fixed set of records through one stage.
pub struct Replay {
    records: Vec<u8>,
    builder: SpanBuilder,
    chain: Arc<PluginChain>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReplayResult {
    pub stage: Stage,
    pub spans: u64,
    pub seconds: f64,
    pub spans_per_second: f64,
    /// Protobuf bytes produced per span (OTLP stage only).
    pub otlp_bytes_per_span: Option<f64>,
}

impl Replay {
    /// `distinct` different events, replayed over and over.
    pub fn new(chain: Arc<PluginChain>, distinct: usize) -> Replay {
        Replay {
            records: records(distinct),
            builder: SpanBuilder::default(),
            chain,
        }
    }

    /// One batch through `stage`; returns (spans out, OTLP bytes).
    pub fn batch(&self, stage: Stage, records: &[u8]) -> (usize, usize) {
        let spans = self.builder.spans(records);
        if stage == Stage::Decode {
            return (spans.len(), 0);
        }
        let spans = self.chain.process(spans);
        if stage == Stage::Plugins {
            return (spans.len(), 0);
        }
        let n = spans.len();
        let bytes = encode_otlp(spans).iter().map(Vec::len).sum();
        (n, bytes)
    }

    /// Runs `stage` for about `duration` and reports spans in per second.
    pub fn measure(&self, stage: Stage, duration: Duration) -> ReplayResult {
        let batch_bytes = BATCH * std::mem::size_of::<HttpServerEvent>();
        let started = Instant::now();
        let (mut spans_in, mut bytes) = (0u64, 0u64);
        while started.elapsed() < duration {
            for records in self.records.chunks_exact(batch_bytes) {
                let (_, b) = self.batch(stage, records);
                spans_in += BATCH as u64;
                bytes += b as u64;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        ReplayResult {
            stage,
            spans: spans_in,
            seconds,
            spans_per_second: spans_in as f64 / seconds,
            otlp_bytes_per_span: (stage == Stage::OtlpEncoding)
                .then(|| bytes as f64 / spans_in as f64),
        }
    }
}
