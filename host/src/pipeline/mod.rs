//! Wires the stages together: discover/inspect/attach (the tracker thread) -> capture (ring
//! buffer) -> decode -> span -> export. This is the one place that knows the whole flow.
mod processes;
mod stats;
mod tracker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use http_autoinstrument_common::{HttpClientEvent, HttpServerEvent, EVENT_RECORD_BYTES};
use tokio::sync::{mpsc, oneshot, watch};

pub use processes::{ExecutableFacts, HostFacts, ProcessTable};
pub use stats::AgentStats;
use tracker::Tracker;

use crate::attach::{ProbeMode, Probes, SamplerSettings, MAX_WAKEUP_EVENTS};
use crate::capture::{Drained, EventSink, RingReader};
use crate::decode::{ClientRequest, ServerRequest};
use crate::discover::Selector;
use crate::export::{ExportConfig, ExportLimits, Exporter};
use crate::plugins::{PluginChain, PluginsConfig, SpanRecorder};
use crate::span::{
    client_span, server_span, QueryRedaction, Resource, Span, WallClock, WallClockSource,
};
use crate::telemetry::{self, Health, MetricSources};

pub struct AgentOptions {
    pub selector: Selector,
    pub probe_mode: ProbeMode,
    pub scan_interval: Duration,
    /// How often the ring buffer is read when no wakeup came.
    pub poll_interval: Duration,
    /// Events waiting in the ring buffer that wake the agent at once.
    pub wakeup_events: u64,
    pub stats_interval: Option<Duration>,
    pub export: ExportConfig,
    pub export_limits: ExportLimits,
    pub plugins: PluginsConfig,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; `None`: nowhere.
    pub metrics_address: Option<SocketAddr>,
    /// `k8s.node.name` of every traced process's resource.
    pub node_name: Option<String>,
    /// Whether a trace is sampled, decided by the probes where it starts.
    pub sampler: SamplerSettings,
    /// Query parameters whose values are redacted, beside the semantic conventions' own.
    pub redact_query_parameters: Vec<String>,
    /// Whether client calls may carry their trace context (`traces.propagation`).
    pub propagate: bool,
}

/// Turns event batches into spans and hands them to the exporter.
struct SpanStage {
    clock: WallClockSource,
    redaction: QueryRedaction,
    processes: ProcessTable,
    stats: Arc<AgentStats>,
    /// `None` when no plugins directory is configured: spans go straight to export.
    plugins: Option<Arc<PluginChain>>,
    /// Records spans as built, for plugin authors (`plugins.record_spans`).
    recorder: Option<SpanRecorder>,
    exporter: Arc<Exporter>,
}

impl SpanStage {
    fn span(&self, event: &HttpServerEvent, resource: Arc<Resource>, clock: &WallClock) -> Span {
        server_span(
            &ServerRequest::from_event(event),
            resource,
            clock,
            &self.redaction,
        )
    }

    fn client_span(&self, event: &HttpClientEvent, clock: &WallClock) -> Span {
        let request = ClientRequest::from_event(event);
        let error_type =
            (request.error_itab).and_then(|itab| self.processes.error_type(request.binary, itab));
        let resource = self.processes.resource(event.pid, event.binary.into());
        client_span(
            &request,
            resource,
            clock,
            &self.redaction,
            error_type.as_deref(),
        )
    }

    fn resource(&self, event: &HttpServerEvent) -> Arc<Resource> {
        self.processes.resource(event.pid, event.binary.into())
    }

    /// Events that did not come through the ring buffer (a panicked request the tracker ended).
    fn handle(&self, events: &[HttpServerEvent]) {
        let clock = self.clock.current();
        let spans = events
            .iter()
            .map(|e| self.span(e, self.resource(e), &clock))
            .collect();
        self.process(spans);
    }

    /// The spans of one batch: through the plugins, then to export.
    fn process(&self, spans: Vec<Span>) {
        if spans.is_empty() {
            return;
        }
        AgentStats::add(&self.stats.spans_built, spans.len() as u64);
        if let Some(recorder) = &self.recorder {
            recorder.record(&spans);
        }
        let spans = match &self.plugins {
            Some(chain) => chain.process(spans),
            None => spans,
        };
        if !spans.is_empty() {
            self.exporter.submit(spans);
        }
    }
}

/// Builds the spans of a ring-buffer drain as the reader hands over each event, so an event is
/// read in place and never copied whole.
struct DrainToSpans {
    stage: Arc<SpanStage>,
    /// The clock of the drain in progress: read once per batch.
    clock: Option<WallClock>,
    /// The process of the drain's last event and its resource: runs of events from one process
    /// are the rule, and the process table costs a lock and a hash lookup. Kept for one drain.
    last_process: Option<(u32, Arc<Resource>)>,
    spans: Vec<Span>,
}

impl EventSink for DrainToSpans {
    fn event(&mut self, event: &HttpServerEvent) {
        let clock = *self.clock.get_or_insert_with(|| self.stage.clock.current());
        let resource = match &self.last_process {
            Some((pid, resource)) if *pid == event.pid => resource.clone(),
            _ => {
                let resource = self.stage.resource(event);
                self.last_process = Some((event.pid, resource.clone()));
                resource
            }
        };
        self.spans.push(self.stage.span(event, resource, &clock));
    }

    fn client_event(&mut self, event: &HttpClientEvent) {
        let clock = *self.clock.get_or_insert_with(|| self.stage.clock.current());
        self.spans.push(self.stage.client_span(event, &clock));
    }

    fn end_of_batch(&mut self, drained: Drained) {
        let stats = &self.stage.stats;
        AgentStats::add(&stats.events_read, drained.events as u64);
        AgentStats::add(&stats.events_malformed, drained.malformed as u64);
        self.clock = None;
        self.last_process = None;
        // The next drain is likely about as large as this one: room for it, allocated once.
        let spans = std::mem::replace(&mut self.spans, Vec::with_capacity(drained.events));
        self.stage.process(spans);
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub async fn run(options: AgentOptions) -> Result<()> {
    crate::capabilities::check()?;
    let mut probes = Probes::load(
        options.probe_mode,
        options.wakeup_events.clamp(1, MAX_WAKEUP_EVENTS) * EVENT_RECORD_BYTES,
        options.sampler,
        options.propagate,
    )?;
    let ring = probes.take_events()?;
    let processes = ProcessTable::new(HostFacts {
        host_name: crate::span::host_name(),
        node_name: options.node_name,
    });
    let stats = Arc::new(AgentStats::default());
    stats.propagation_enabled.store(
        u64::from(*probes.propagation() == crate::attach::Propagation::On),
        std::sync::atomic::Ordering::Relaxed,
    );
    let exporter = Arc::new(Exporter::start(options.export, options.export_limits)?);
    let recorder = match &options.plugins.record_spans {
        Some(path) => Some(SpanRecorder::create(
            path,
            options.plugins.record_spans_max_mib.saturating_mul(1 << 20),
        )?),
        None => None,
    };
    let (plugins, _plugin_watcher) = match options.plugins.dir {
        Some(_) => {
            let chain = PluginChain::new(options.plugins)?;
            let watcher = chain.watch()?;
            tracing::info!("plugins: {}", chain.describe());
            (Some(chain), Some(watcher))
        }
        None => (None, None),
    };
    let telemetry_server = match options.metrics_address {
        Some(address) => {
            let registry = telemetry::registry(MetricSources {
                agent: stats.clone(),
                export: exporter.stats_source(),
                plugins: plugins.clone(),
            });
            let server = telemetry::serve(address, registry, Health::new(stats.clone())).await?;
            tracing::info!(address = %server.address, "serving /metrics, /healthz and /readyz");
            Some(server)
        }
        None => None,
    };
    let stage = Arc::new(SpanStage {
        clock: WallClockSource::new(),
        redaction: QueryRedaction::with_extra(&options.redact_query_parameters),
        processes: processes.clone(),
        stats: stats.clone(),
        plugins,
        recorder,
        exporter: exporter.clone(),
    });

    let (panicked_tx, mut panicked_rx) = mpsc::channel::<HttpServerEvent>(1024);
    let stop_tracker = Arc::new(AtomicBool::new(false));
    let (tracker_alive, tracker_ended) = oneshot::channel::<()>();
    let tracker = {
        let tracker = Tracker::new(
            probes,
            options.selector,
            processes,
            stats.clone(),
            panicked_tx,
        );
        let stop = stop_tracker.clone();
        let interval = options.scan_interval;
        std::thread::Builder::new()
            .name("tracker".into())
            .spawn(move || {
                // Dropped when the thread ends, however it ends: what `tracker_ended` waits for.
                let _alive = tracker_alive;
                tracker.run(interval, &stop)
            })
            .context("starting the tracker thread")?
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (reader_alive, reader_ended) = oneshot::channel::<()>();
    let reader = {
        let stage = stage.clone();
        let reader = RingReader::new(ring, options.poll_interval)?;
        tokio::spawn(async move {
            let _alive = reader_alive;
            let mut sink = DrainToSpans {
                stage,
                clock: None,
                last_process: None,
                spans: Vec::new(),
            };
            reader.run(shutdown_rx, &mut sink).await
        })
    };
    let panics = {
        let stage = stage.clone();
        tokio::spawn(async move {
            while let Some(event) = panicked_rx.recv().await {
                stage.handle(&[event]);
            }
        })
    };
    let reporter = options.stats_interval.map(|every| {
        let stats = stats.clone();
        let exporter = exporter.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                tracing::info!("stats: {} {}", stats.summary(), exporter.stats());
            }
        })
    });

    tracing::info!("agent running; stop with Ctrl-C or SIGTERM");
    // The tracker and the reader run until told to stop. If either ends first, the agent would go
    // on looking healthy while tracing nothing new (or nothing at all): it stops instead, with an
    // error, and its supervisor (Kubernetes, systemd) starts it again.
    let failure = tokio::select! {
        _ = shutdown_signal() => None,
        _ = tracker_ended => Some("the process tracker stopped"),
        _ = reader_ended => Some("the ring-buffer reader stopped"),
    };
    match failure {
        None => tracing::info!("stopping"),
        Some(what) => tracing::error!("{what} unexpectedly (see above); stopping"),
    }

    stop_tracker.store(true, Relaxed);
    let tracker_result = tokio::task::spawn_blocking(move || tracker.join()).await?;
    let _ = shutdown_tx.send(true);
    reader.await??;
    // The tracker has stopped, so the panicked-events channel is closed: this ends.
    panics.await?;
    if let Some(reporter) = reporter {
        reporter.abort();
        let _ = reporter.await;
    }
    if let Some(server) = telemetry_server {
        server.stop().await;
    }
    drop(stage);
    let exporter = Arc::try_unwrap(exporter)
        .map_err(|_| anyhow::anyhow!("exporter still shared at shutdown"))?;
    let export_stats = exporter.shutdown().await;
    // One machine-readable line with the final counters, also for scripts and tests.
    println!("final stats: {} {}", stats.summary(), export_stats);
    if tracker_result.is_err() {
        anyhow::bail!("the process tracker panicked");
    }
    match failure {
        None => Ok(()),
        Some(what) => Err(anyhow::anyhow!("{what} unexpectedly")),
    }
}
