//! The agent's exporter end to end: spans submitted -> batched -> opentelemetry-otlp over
//! http/protobuf on loopback -> a receiver that decodes every request (`sink`).
use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use http_autoinstrument::export::{ExportConfig, ExportLimits, Exporter};
use serde::Serialize;

use crate::replay::BATCH;
use crate::sink::OtlpSink;
use crate::workload::{records, SpanBuilder};

#[derive(Clone, Debug, Serialize)]
pub struct ExportResult {
    pub spans: u64,
    pub seconds: f64,
    pub spans_per_second: f64,
}

/// Exports `total` spans (built beforehand) and times them until the receiver has them all.
pub fn measure(sink: &OtlpSink, total: u64) -> Result<ExportResult> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let vars = HashMap::from([
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
                sink.endpoint.clone(),
            ),
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL".to_string(),
                "http/protobuf".to_string(),
            ),
        ]);
        let limits = ExportLimits {
            queue_capacity: 1 << 20,
            ..ExportLimits::default()
        };
        let exporter = Exporter::start(ExportConfig::from_env_map(&vars)?, limits)?;
        let builder = SpanBuilder::default();
        let batch = records(BATCH);
        let batches: Vec<_> = (0..total.div_ceil(BATCH as u64))
            .map(|_| builder.spans(&batch))
            .collect();
        let spans = batches.iter().map(Vec::len).sum::<usize>() as u64;
        let before = sink.spans();
        let started = Instant::now();
        for batch in batches {
            exporter.submit(batch);
        }
        while sink.spans() - before < spans {
            if started.elapsed() > Duration::from_secs(120) {
                bail!(
                    "the receiver got {} of {spans} spans: {}",
                    sink.spans() - before,
                    exporter.stats()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        let stats = exporter.shutdown().await;
        ensure!(
            stats.exported == spans && stats.failed == 0 && stats.dropped == 0,
            "export lost spans: {stats}"
        );
        Ok(ExportResult {
            spans,
            seconds,
            spans_per_second: spans as f64 / seconds,
        })
    })
}
