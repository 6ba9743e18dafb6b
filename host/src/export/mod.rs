//! Export: finished spans out of the agent, to an OTLP collector or to standard output.
//!
//! ```text
//! submit (never blocks) -> bounded queue -> export task: batch -> group by resource
//!     -> opentelemetry-otlp SpanExporter (gRPC | http/protobuf), retried with backoff
//!     or -> one line per span on stdout when no endpoint is configured
//! ```
//!
//! - `config`: the `export` section and the standard `OTEL_EXPORTER_OTLP_*` variables.
//! - `queue`: the non-blocking hand-off and the counters.
//! - `worker`: batching and shutdown.
//! - `otlp`, `convert`, `retry`: sending through opentelemetry-otlp.
//! - `stdout`: the line format.
//!
//! Caveat: opentelemetry-otlp itself also reads `OTEL_EXPORTER_OTLP_{,TRACES_}HEADERS` and
//! `..._COMPRESSION` from the process environment when the exporter is built. The headers are
//! the same ones our configuration parsed (in the agent the map *is* the process environment).
//! Compression is passed explicitly when it is gzip; for `none` the agent removes the variables
//! at start ([`hide_compression_from_exporter`]), since the crate knows no `none` and fails on it.

mod config;
mod convert;
mod otlp;
mod queue;
mod retry;
mod stdout;
mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::span::Span;

pub use config::{
    check_endpoint, Compression, ConfigError, ExportConfig, ExportSection, OtlpConfig, Protocol,
    DEFAULT_TIMEOUT,
};
pub use config::{
    COMPRESSION, ENDPOINT, HEADERS, PROTOCOL, TIMEOUT, TRACES_COMPRESSION, TRACES_ENDPOINT,
    TRACES_ENDPOINT_ALIAS, TRACES_HEADERS, TRACES_PROTOCOL, TRACES_TIMEOUT,
};

/// Removes `OTEL_EXPORTER_OTLP_{,TRACES_}COMPRESSION` from this process's environment when the
/// configuration resolved to no compression: opentelemetry-otlp reads them itself and fails on
/// `none`, the spec's default value (gzip is passed to it explicitly, which it prefers). Call it
/// before any other thread starts: the environment is the whole process's.
pub fn hide_compression_from_exporter(config: &ExportConfig) {
    if let ExportConfig::Otlp(OtlpConfig {
        compression: Compression::None,
        ..
    }) = config
    {
        for var in [TRACES_COMPRESSION, COMPRESSION] {
            std::env::remove_var(var);
        }
    }
}
pub use convert::SCOPE_NAME;
pub use otlp::sdk_batches;
pub use queue::ExportStats;
pub use stdout::{format_span_line, format_timestamp};

use queue::{Counters, SpanQueue};
use worker::{ShutdownSignal, Sink};

/// Sizes and times that bound the exporter's memory and patience.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportLimits {
    /// Spans held at most (queued, batched or in flight); more are dropped by `submit`.
    pub queue_capacity: usize,
    /// Spans per export call at most.
    pub max_batch_size: usize,
    /// How long a span may wait for its batch to fill before the batch is sent anyway.
    pub max_batch_delay: Duration,
    /// Attempts per batch (the first one included) before giving up.
    pub max_export_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Time from a batch's first attempt after which it is not retried any more.
    pub max_retry_time: Duration,
    /// How long `shutdown` may spend flushing.
    pub shutdown_timeout: Duration,
}

impl Default for ExportLimits {
    /// The BatchSpanProcessor's batch size, a shorter delay (an agent's spans should show up
    /// quickly and the export is off the traced process anyway), and a larger queue: one HTTP
    /// service can produce thousands of spans a second and ~8k spans stay within a few MB.
    fn default() -> Self {
        ExportLimits {
            queue_capacity: 8192,
            max_batch_size: 512,
            max_batch_delay: Duration::from_millis(200),
            max_export_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            max_retry_time: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl ExportLimits {
    /// Zero sizes would make the exporter useless (or spin); they are raised to 1.
    fn sanitized(mut self) -> Self {
        self.queue_capacity = self.queue_capacity.max(1);
        self.max_batch_size = self.max_batch_size.max(1);
        self.max_export_attempts = self.max_export_attempts.max(1);
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "the exporter must be started from within a Tokio runtime (it spawns its export task)"
    )]
    NoRuntime,
    #[error("cannot build the {protocol} OTLP exporter for {endpoint} (from {var}): {reason}")]
    Build {
        protocol: Protocol,
        endpoint: String,
        var: &'static str,
        reason: String,
    },
}

/// Reads the exporter's counters, also after the exporter is shut down.
#[derive(Clone, Debug)]
pub struct ExportStatsSource(Arc<Counters>);

impl ExportStatsSource {
    pub fn snapshot(&self) -> ExportStats {
        self.0.snapshot()
    }
}

/// Handle to the export task. Dropping it closes the queue and lets the task flush in the
/// background; `shutdown` does the same but waits (bounded) for the flush.
pub struct Exporter {
    queue: SpanQueue,
    counters: Arc<Counters>,
    shutdown: watch::Sender<Option<Instant>>,
    task: JoinHandle<()>,
    shutdown_timeout: Duration,
}

impl Exporter {
    /// Starts the export task on the current Tokio runtime.
    pub fn start(config: ExportConfig, limits: ExportLimits) -> Result<Exporter, ExportError> {
        tokio::runtime::Handle::try_current().map_err(|_| ExportError::NoRuntime)?;
        let limits = limits.sanitized();
        let sink = match config {
            ExportConfig::Stdout => {
                tracing::info!(
                    "no OTLP endpoint set ({} or {}): writing spans to standard output",
                    config::ENDPOINT,
                    config::TRACES_ENDPOINT
                );
                Sink::Lines(stdout::LineSink::new(Box::new(tokio::io::stdout())))
            }
            ExportConfig::Otlp(otlp) => {
                let exporter =
                    otlp::build_exporter(&otlp).map_err(|reason| ExportError::Build {
                        protocol: otlp.protocol,
                        endpoint: otlp.endpoint.clone(),
                        var: otlp.endpoint_var,
                        reason,
                    })?;
                tracing::info!(
                    endpoint = %otlp.endpoint,
                    protocol = %otlp.protocol,
                    headers = otlp.headers.len(),
                    timeout = ?otlp.timeout,
                    "exporting spans over OTLP {} to {} (from {})",
                    otlp.protocol,
                    otlp.endpoint,
                    otlp.endpoint_var
                );
                Sink::Otlp(Box::new(otlp::OtlpSink::new(
                    exporter,
                    otlp.timeout,
                    limits,
                )))
            }
        };
        Ok(Exporter::spawn(sink, limits))
    }

    /// Stdout mode writing to `writer` instead (a file, or a buffer in tests).
    pub fn start_with_writer(
        writer: impl AsyncWrite + Send + Unpin + 'static,
        limits: ExportLimits,
    ) -> Result<Exporter, ExportError> {
        tokio::runtime::Handle::try_current().map_err(|_| ExportError::NoRuntime)?;
        let limits = limits.sanitized();
        Ok(Exporter::spawn(
            Sink::Lines(stdout::LineSink::new(Box::new(writer))),
            limits,
        ))
    }

    fn spawn(sink: Sink, limits: ExportLimits) -> Exporter {
        let counters = Arc::new(Counters::new());
        let (queue, receiver) = SpanQueue::new(limits.queue_capacity, counters.clone());
        let (shutdown, signal) = ShutdownSignal::new();
        let run = worker::run(receiver, sink, limits, counters.clone(), signal);
        let warn = queue::warn_about_drops(counters.clone(), limits.queue_capacity);
        // One task: the warner lives exactly as long as the export loop.
        let task = tokio::spawn(async move {
            tokio::select! {
                () = run => {}
                () = warn => {}
            }
        });
        Exporter {
            queue,
            counters,
            shutdown,
            task,
            shutdown_timeout: limits.shutdown_timeout,
        }
    }

    /// Queues spans for export. Never blocks or waits: what does not fit in the queue is
    /// dropped and counted (see [`ExportStats::dropped`]).
    pub fn submit(&self, spans: Vec<Span>) {
        self.queue.push(spans);
    }

    pub fn stats(&self) -> ExportStats {
        self.counters.snapshot()
    }

    /// A handle that reads the counters without keeping the exporter (for `/metrics`).
    pub fn stats_source(&self) -> ExportStatsSource {
        ExportStatsSource(self.counters.clone())
    }

    /// Flushes what is queued, waiting at most the limits' `shutdown_timeout`; spans still
    /// held then are counted as failed. Returns the final counters.
    pub async fn shutdown(self) -> ExportStats {
        let Exporter {
            queue,
            counters,
            shutdown,
            mut task,
            shutdown_timeout,
        } = self;
        drop(queue);
        let _ = shutdown.send(Some(Instant::now() + shutdown_timeout));
        // A little grace beyond the deadline the task itself honours, before cutting it off.
        let hard_limit = shutdown_timeout + Duration::from_millis(250);
        if tokio::time::timeout(hard_limit, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
            let left = counters.queued();
            if left > 0 {
                counters.gave_up(
                    left as usize,
                    &format!("shutdown timeout ({shutdown_timeout:?}) reached while flushing"),
                );
            }
        }
        counters.snapshot()
    }
}
