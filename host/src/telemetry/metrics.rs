//! `/metrics`: the agent's counters in the Prometheus text format.
//!
//! The counters already live in the stages (`AgentStats`, the exporter, each plugin); this
//! collector reads them at scrape time instead of keeping a second copy up to date.
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::export::ExportStatsSource;
use crate::pipeline::AgentStats;
use crate::plugins::PluginChain;

/// Where the metrics come from.
#[derive(Clone)]
pub struct MetricSources {
    pub agent: Arc<AgentStats>,
    pub export: ExportStatsSource,
    /// `None` when no plugins directory is configured.
    pub plugins: Option<Arc<PluginChain>>,
}

/// The registry with every agent metric, prefixed `http_autoinstrument_`.
pub fn registry(sources: MetricSources) -> Registry {
    let mut registry = Registry::with_prefix("http_autoinstrument");
    registry.register_collector(Box::new(AgentCollector(sources)));
    registry
}

/// Renders the registry as the text exposition format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

struct AgentCollector(MetricSources);

impl std::fmt::Debug for AgentCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentCollector")
    }
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    ConstGauge::new(value as i64).encode(e.encode_descriptor(
        name,
        help,
        None,
        MetricType::Gauge,
    )?)
}

#[derive(Clone, Copy)]
enum Scalar {
    Counter,
    Gauge,
}

/// Metrics without labels, in the order given: (kind, name, help, value).
fn scalars(e: &mut DescriptorEncoder, metrics: &[(Scalar, &str, &str, u64)]) -> std::fmt::Result {
    for &(kind, name, help, value) in metrics {
        match kind {
            Scalar::Counter => counter(e, name, help, value)?,
            Scalar::Gauge => gauge(e, name, help, value)?,
        }
    }
    Ok(())
}

fn probe_hits(
    e: &mut DescriptorEncoder,
    kernel: &crate::attach::KernelCounters,
) -> std::fmt::Result {
    let mut hits = e.encode_descriptor(
        "probe_hits",
        "Uprobe hits in traced processes",
        None,
        MetricType::Counter,
    )?;
    for (probe, value) in [
        ("entry", kernel.entry_hits),
        ("request_end", kernel.request_end_hits),
        ("client_start", kernel.client_entry_hits),
        ("client_return", kernel.client_return_hits),
        ("header_write", kernel.header_write_hits),
    ] {
        hits.encode_family(&[("probe", probe)])?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
    }
    Ok(())
}

/// A counter with one series per plugin (`plugin` label, plus the extra labels given).
fn per_plugin<V: prometheus_client::encoding::EncodeCounterValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Vec<(&str, &str)>, V)],
) -> std::fmt::Result {
    let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        family
            .encode_family(labels)?
            .encode_counter::<NoLabelSet, _, u64>(value, None)?;
    }
    Ok(())
}

impl Collector for AgentCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let agent = &self.0.agent;
        let kernel = *agent.kernel.lock().unwrap_or_else(|p| p.into_inner());
        let export = self.0.export.snapshot();
        let e = &mut e;

        scalars(
            e,
            &[
                (
                    Scalar::Gauge,
                    "propagation_enabled",
                    "1 when client calls carry their trace context (traceparent) to the next \
                     service, 0 when switched off or forbidden by the kernel (see the log)",
                    agent.propagation_enabled.load(Relaxed),
                ),
                (
                    Scalar::Gauge,
                    "processes_traced",
                    "Processes traced now",
                    agent.processes_traced.load(Relaxed),
                ),
                (
                    Scalar::Gauge,
                    "probes_attached",
                    "Uprobe links attached now (per executable, not per replica, when selected by executable)",
                    agent.probes_attached.load(Relaxed),
                ),
                (
                    Scalar::Gauge,
                    "executables_attached",
                    "Executables with probes attached now",
                    agent.executables_attached.load(Relaxed),
                ),
                (
                    Scalar::Counter,
                    "processes_attached",
                    "Processes traced since start",
                    agent.processes_attached.load(Relaxed),
                ),
                (
                    Scalar::Counter,
                    "attach_failures",
                    "Processes the probes could not be attached to",
                    agent.attach_failures.load(Relaxed),
                ),
                (
                    Scalar::Counter,
                    "process_scans",
                    "Completed scans of /proc for new and exited processes",
                    agent.scans_completed.load(Relaxed),
                ),
            ],
        )?;
        probe_hits(e, &kernel)?;
        scalars(
            e,
            &[
                (
                    Scalar::Counter,
                    "kernel_events_submitted",
                    "Request events the probes wrote to the ring buffer",
                    kernel.events_submitted,
                ),
                (
                    Scalar::Counter,
                    "kernel_events_lost",
                    "Request events lost in the kernel because the ring buffer was full",
                    kernel.events_lost,
                ),
                (
                    Scalar::Counter,
                    "kernel_ends_without_entry",
                    "Request ends and client returns seen without their start",
                    kernel.ends_without_entry,
                ),
                (
                    Scalar::Counter,
                    "kernel_panics",
                    "Handler panics seen by the probes",
                    kernel.panics,
                ),
                (
                    Scalar::Counter,
                    "kernel_ends_after_panic_reported",
                    "Requests that returned after recovering from a panic, too late: already \
                     reported as panicked, not sent again",
                    kernel.ends_after_panic_reported,
                ),
                (
                    Scalar::Counter,
                    "spans_not_sampled",
                    "Requests and client calls whose trace the sampler dropped (no event, no export)",
                    kernel.not_sampled,
                ),
                (
                    Scalar::Counter,
                    "traceparent_written",
                    "HTTP/1.x client requests the probes wrote a traceparent header into",
                    kernel.traceparents_written,
                ),
                (
                    Scalar::Counter,
                    "traceparent_left_to_application",
                    "Client requests not given a traceparent because the application set its own",
                    kernel.traceparents_left_to_application,
                ),
                (
                    Scalar::Counter,
                    "traceparent_no_room",
                    "Client requests not given a traceparent because the request writer's buffer \
                     had no room for it",
                    kernel.traceparents_without_room,
                ),
                (
                    Scalar::Counter,
                    "traceparent_replaced",
                    "Client requests whose traceparent, copied by a proxy from the request it \
                     serves, was replaced in place by the client span's",
                    kernel.traceparents_replaced,
                ),
                (
                    Scalar::Counter,
                    "kernel_unconfigured_hits",
                    "Probe hits in a process the agent is attaching to or detaching from",
                    kernel.unconfigured_hits,
                ),
                (
                    Scalar::Counter,
                    "events_read",
                    "Request events read from the ring buffer",
                    agent.events_read.load(Relaxed),
                ),
                (
                    Scalar::Counter,
                    "events_malformed",
                    "Ring buffer records that were not request events",
                    agent.events_malformed.load(Relaxed),
                ),
                (
                    Scalar::Counter,
                    "spans_built",
                    "Spans built from request events",
                    agent.spans_built.load(Relaxed),
                ),
                (
                    Scalar::Counter,
                    "spans_submitted",
                    "Spans handed to the exporter (after plugins)",
                    export.submitted,
                ),
                (
                    Scalar::Counter,
                    "spans_exported",
                    "Spans the collector (or stdout) accepted",
                    export.exported,
                ),
                (
                    Scalar::Counter,
                    "spans_dropped",
                    "Spans refused because the export queue was full",
                    export.dropped,
                ),
                (
                    Scalar::Counter,
                    "spans_failed",
                    "Spans given up on after retries, a permanent error or shutdown",
                    export.failed,
                ),
                (
                    Scalar::Gauge,
                    "spans_queued",
                    "Spans held by the exporter now",
                    export.queued,
                ),
                (
                    Scalar::Counter,
                    "export_retries",
                    "Export attempts that were retries",
                    export.retries,
                ),
            ],
        )?;

        let Some(chain) = &self.0.plugins else {
            return Ok(());
        };
        let stats = chain.stats();
        let series = |f: &dyn Fn(&crate::plugins::StatsSnapshot) -> u64| {
            stats
                .iter()
                .map(|(name, s)| (vec![("plugin", name.as_str())], f(s)))
                .collect::<Vec<_>>()
        };
        per_plugin(
            e,
            "plugin_calls",
            "Calls into the plugin",
            &series(&|s| s.calls),
        )?;
        per_plugin(
            e,
            "plugin_spans_in",
            "Spans that reached the plugin",
            &series(&|s| s.spans_in),
        )?;
        per_plugin(
            e,
            "plugin_spans_out",
            "Spans the plugin passed on",
            &series(&|s| s.spans_out),
        )?;
        let mut dropped = Vec::new();
        for (name, s) in &stats {
            dropped.push((
                vec![("plugin", name.as_str()), ("cause", "plugin")],
                s.dropped_by_plugin,
            ));
            dropped.push((
                vec![("plugin", name.as_str()), ("cause", "error")],
                s.dropped_on_error,
            ));
        }
        per_plugin(
            e,
            "plugin_spans_dropped",
            "Spans dropped by the plugin (cause=plugin) or by its on-error policy (cause=error)",
            &dropped,
        )?;
        let mut errors = Vec::new();
        for (name, s) in &stats {
            let other = s.errors
                - (s.timeouts + s.out_of_memory + s.traps + s.invalid_output).min(s.errors);
            for (kind, value) in [
                ("timeout", s.timeouts),
                ("out_of_memory", s.out_of_memory),
                ("trap", s.traps),
                ("invalid_output", s.invalid_output),
                ("plugin_error", other),
            ] {
                errors.push((vec![("plugin", name.as_str()), ("kind", kind)], value));
            }
        }
        per_plugin(e, "plugin_errors", "Failed batches, by kind", &errors)?;
        per_plugin(
            e,
            "plugin_suspended_batches",
            "Batches skipped because the plugin was suspended",
            &series(&|s| s.suspended_batches),
        )?;
        per_plugin(
            e,
            "plugin_not_loaded_batches",
            "Batches dropped because the plugin failed to load and its on-error is drop",
            &series(&|s| s.not_loaded_batches),
        )?;
        let seconds: Vec<_> = stats
            .iter()
            .map(|(name, s)| (vec![("plugin", name.as_str())], s.call_nanos as f64 / 1e9))
            .collect();
        per_plugin(
            e,
            "plugin_call_seconds",
            "Time spent in calls into the plugin",
            &seconds,
        )?;
        per_plugin(
            e,
            "plugin_loads",
            "Versions of the plugin loaded (the first load and every reload)",
            &series(&|s| s.loads),
        )?;
        per_plugin(
            e,
            "plugin_load_failures",
            "Versions of the plugin that failed to load",
            &series(&|s| s.load_failures),
        )?;
        gauge(
            e,
            "plugins_running",
            "Plugins in the chain now",
            chain.plugin_names().len() as u64,
        )?;
        gauge(
            e,
            "plugins_blocking",
            "Plugins that failed to load and drop every span until they load (on-error = drop)",
            chain.blocking().len() as u64,
        )?;
        Ok(())
    }
}
