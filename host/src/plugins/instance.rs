//! One loaded version of one plugin: its compiled code, its live instance, its health.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wasmtime::Store;

use crate::span::Span;

use super::bindings::{SpanProcessor, SpanProcessorPre};
use super::check::{check_component, ComponentReport};
use super::codec::SharedBatch;
use super::config::{Grants, OnError, PluginSettings, PluginsConfig};
use super::edits::{self, EditLimits};
use super::engine::{ContentHash, PluginEngine};
use super::epoch::budget_ticks;
use super::failure::{classify, FailureKind};
use super::state::PluginState;
use super::stats::PluginStats;

/// Instantiation and `init` may take longer than a batch (large Python/JS components).
const MIN_INIT_BUDGET: Duration = Duration::from_secs(5);

/// Why a span left the chain early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropCause {
    /// The plugin returned a `drop` edit.
    ByPlugin,
    /// The plugin failed (or is suspended) and its policy is `on-error = "drop"`.
    OnError(FailureKind),
}

/// Receives each dropped span, with its position in the batch the plugin was given (in increasing
/// order), the plugin that dropped it and why.
pub type DropSink<'a> = dyn FnMut(usize, &Span, &str, &DropCause) + 'a;

/// Identity of a version: the plugin's bytes and its settings file's bytes.
pub type VersionKey = (ContentHash, ContentHash);

pub struct PluginVersion {
    pub name: Arc<str>,
    pub key: VersionKey,
    pub on_error: OnError,
    pub report: ComponentReport,
    pub stats: Arc<PluginStats>,
    budget: Duration,
    memory_cap: usize,
    grants: Grants,
    init_json: String,
    limits: EditLimits,
    suspend_after: u32,
    max_suspension: Duration,
    engine: Arc<PluginEngine>,
    pre: SpanProcessorPre<PluginState>,
    live: Mutex<Live>,
}

struct Live {
    instance: Option<Instance>,
    dropped: Vec<bool>,
    consecutive_failures: u32,
    suspensions: u32,
    suspended_until: Option<Instant>,
}

struct Instance {
    store: Store<PluginState>,
    bindings: SpanProcessor,
}

pub struct LoadRequest<'a> {
    pub name: &'a str,
    pub wasm: &'a [u8],
    pub settings: PluginSettings,
    pub key: VersionKey,
    pub stats: Arc<PluginStats>,
}

impl PluginVersion {
    /// Compiles (or takes from the cache), checks, instantiates and initialises a plugin.
    /// Runs off the hot path; the chain only sees the result once it is ready.
    pub fn load(
        engine: &Arc<PluginEngine>,
        config: &PluginsConfig,
        req: LoadRequest<'_>,
    ) -> Result<Self> {
        let component = engine.compile(req.wasm)?;
        let report = check_component(engine.engine(), &component)?;
        let pre = engine
            .linker()
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("cannot link the plugin's imports")?;
        let pre = SpanProcessorPre::new(pre)
            .map_err(anyhow::Error::from)
            .context("component does not match the span-processor world")?;
        let settings = &req.settings;
        let version = PluginVersion {
            name: req.name.into(),
            key: req.key,
            on_error: settings.on_error,
            report,
            stats: req.stats,
            budget: Duration::from_millis(settings.time_budget_ms.unwrap_or(config.time_budget_ms)),
            memory_cap: (settings.memory_limit_mib.unwrap_or(config.memory_limit_mib) as usize)
                .saturating_mul(1 << 20),
            grants: settings.grants.clone(),
            init_json: settings.init_json(),
            limits: EditLimits {
                max_value_bytes: config.max_value_bytes,
                max_key_bytes: config.max_key_bytes,
                max_attributes_per_span: config.max_attributes_per_span,
                max_written_bytes_per_span: edits::MAX_WRITTEN_BYTES_PER_SPAN,
            },
            suspend_after: config.suspend_after_failures.max(1),
            max_suspension: Duration::from_secs(config.max_suspension_secs.max(1)),
            engine: engine.clone(),
            pre,
            live: Mutex::new(Live {
                instance: None,
                dropped: Vec::new(),
                consecutive_failures: 0,
                suspensions: 0,
                suspended_until: None,
            }),
        };
        let instance = version.instantiate()?;
        version.lock().instance = Some(instance);
        Ok(version)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn instantiate(&self) -> Result<Instance> {
        let state = PluginState::new(self.name.clone(), self.memory_cap, &self.grants)?;
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.memory);
        store.epoch_deadline_trap();
        // Instantiation runs the component's start code, then `init`.
        let _running = self.engine.running_plugin_code();
        store.set_epoch_deadline(budget_ticks(self.budget.max(MIN_INIT_BUDGET)));
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(anyhow::Error::from)
            .context("instantiation failed")?;
        bindings
            .http_autoinstrument_plugin_processor()
            .call_init(&mut store, &self.init_json)
            .map_err(anyhow::Error::from)
            .context("init trapped")?
            .map_err(|e| anyhow::anyhow!("init refused the settings: {e}"))?;
        Ok(Instance { store, bindings })
    }

    /// Runs `spans` through this plugin. Never fails: a failure applies the `on-error` policy.
    /// `shared` holds the chain's encoding of `spans`; it is brought up to date here when the
    /// spans change.
    pub fn process(
        &self,
        spans: &mut Vec<Span>,
        sink: &mut DropSink<'_>,
        shared: &mut SharedBatch,
    ) {
        let n = spans.len();
        if n == 0 {
            return;
        }
        let started = Instant::now();
        let mut live = self.lock();
        let live = &mut *live;
        if let Some(until) = live.suspended_until {
            if Instant::now() < until {
                let left = until.saturating_duration_since(Instant::now());
                self.fail(
                    live,
                    spans,
                    FailureKind::Suspended,
                    &format!("suspended for {left:?} more"),
                    sink,
                );
                self.stats
                    .record_batch(n, spans.len(), false, elapsed(started));
                return;
            }
            // On probation: one more failure suspends it again, for twice as long.
            live.suspended_until = None;
            live.consecutive_failures = self.suspend_after.saturating_sub(1);
        }
        if live.instance.is_none() {
            match self.instantiate() {
                Ok(i) => live.instance = Some(i),
                Err(e) => {
                    self.fail(
                        live,
                        spans,
                        FailureKind::Instantiation,
                        &format!("{e:#}"),
                        sink,
                    );
                    self.stats
                        .record_batch(n, spans.len(), false, elapsed(started));
                    return;
                }
            }
        }
        let Some(instance) = live.instance.as_mut() else {
            return;
        };
        let batch = shared.get(spans);
        // The number of spans the encoding describes once this call is done.
        let mut described = n;
        instance.store.data_mut().memory.exceeded = false;
        instance.store.set_epoch_deadline(budget_ticks(self.budget));
        let running = self.engine.running_plugin_code();
        let result = instance
            .bindings
            .http_autoinstrument_plugin_processor()
            .call_process(&mut instance.store, batch);
        drop(running);
        match result {
            Err(e) => {
                let kind = classify(&e, instance.store.data().memory.exceeded);
                // A trapped instance is not entered again; the next batch gets a fresh one.
                live.instance = None;
                let message = match kind {
                    FailureKind::Timeout => format!("ran longer than its {:?} budget", self.budget),
                    FailureKind::OutOfMemory => format!(
                        "needed more than its {} MiB memory cap",
                        self.memory_cap >> 20
                    ),
                    _ => format!("{e:#}"),
                };
                self.fail(live, spans, kind, &message, sink);
            }
            Ok(Err(message)) => self.fail(live, spans, FailureKind::PluginError, &message, sink),
            Ok(Ok(edits)) => {
                live.dropped.clear();
                live.dropped.resize(n, false);
                match edits::apply(spans, &edits, &self.limits, &mut live.dropped) {
                    Err(message) => {
                        self.fail(live, spans, FailureKind::InvalidOutput, &message, sink)
                    }
                    Ok(applied) => {
                        shared.update(spans, &applied.changed_spans, &live.dropped);
                        described = n - applied.dropped;
                        self.stats
                            .record_edit_limits(applied.truncated, applied.rejected);
                        if applied.dropped > 0 {
                            self.stats.record_dropped_by_plugin(applied.dropped);
                            let mut flags = live.dropped.iter().enumerate();
                            spans.retain(|s| {
                                let (position, &dropped) = flags.next().unwrap_or((0, &false));
                                if dropped {
                                    sink(position, s, &self.name, &DropCause::ByPlugin);
                                }
                                !dropped
                            });
                        }
                        live.consecutive_failures = 0;
                        live.suspensions = 0;
                    }
                }
            }
        }
        // A failure's policy (dropping the batch) changes the spans behind the encoding's back.
        if spans.len() != described {
            shared.invalidate();
        }
        self.stats
            .record_batch(n, spans.len(), true, elapsed(started));
    }

    fn fail(
        &self,
        live: &mut Live,
        spans: &mut Vec<Span>,
        kind: FailureKind,
        message: &str,
        sink: &mut DropSink<'_>,
    ) {
        let dropped = match self.on_error {
            OnError::Pass => 0,
            OnError::Drop => {
                let cause = DropCause::OnError(kind);
                for (position, s) in spans.iter().enumerate() {
                    sink(position, s, &self.name, &cause);
                }
                let n = spans.len();
                spans.clear();
                n
            }
        };
        self.stats.record_failure(kind, message, dropped);
        if kind == FailureKind::Suspended {
            return;
        }
        live.consecutive_failures += 1;
        if live.consecutive_failures == 1 {
            tracing::warn!(plugin = &*self.name, %kind, policy = ?self.on_error, "plugin failed on a batch: {message}");
        } else {
            tracing::debug!(plugin = &*self.name, %kind, "plugin failed again: {message}");
        }
        if live.consecutive_failures >= self.suspend_after {
            let backoff =
                Duration::from_secs(1u64 << live.suspensions.min(20)).min(self.max_suspension);
            live.suspensions += 1;
            live.consecutive_failures = 0;
            live.suspended_until = Some(Instant::now() + backoff);
            tracing::error!(
                plugin = &*self.name,
                policy = ?self.on_error,
                "plugin failed {} batches in a row; suspended for {backoff:?} (last: {kind}: {message})",
                self.suspend_after
            );
        }
    }
}

fn elapsed(since: Instant) -> u64 {
    since.elapsed().as_nanos() as u64
}
