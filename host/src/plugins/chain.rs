//! The ordered chain of plugins the agent runs every batch through.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use arc_swap::ArcSwap;

use crate::span::Span;

use super::closed::ClosedPlugin;
use super::codec::SharedBatch;
use super::config::PluginsConfig;
use super::engine::PluginEngine;
pub use super::instance::DropCause;
use super::instance::{DropSink, PluginVersion, VersionKey};
pub use super::reload::PluginWatcher;
use super::stats::{PluginStats, StatsSnapshot};

/// One dropped span as reported by [`PluginChain::process_reporting`].
#[derive(Clone, Debug)]
pub struct DropReport {
    pub span: Span,
    pub plugin: String,
    pub cause: DropCause,
}

/// What became of one input span, as reported by [`PluginChain::process_reporting`].
#[derive(Clone, Debug)]
pub enum Outcome {
    Kept(Span),
    Dropped(DropReport),
}

/// One place in the chain: a loaded plugin, or one that failed to load and whose policy holds
/// the chain closed until it loads.
pub(super) enum Link {
    Loaded(Box<PluginVersion>),
    Closed(ClosedPlugin),
}

impl Link {
    pub(super) fn name(&self) -> &Arc<str> {
        match self {
            Link::Loaded(p) => &p.name,
            Link::Closed(p) => &p.name,
        }
    }

    pub(super) fn key(&self) -> VersionKey {
        match self {
            Link::Loaded(p) => p.key,
            Link::Closed(p) => p.key,
        }
    }

    fn process(&self, spans: &mut Vec<Span>, sink: &mut DropSink<'_>, shared: &mut SharedBatch) {
        match self {
            Link::Loaded(p) => p.process(spans, sink, shared),
            Link::Closed(p) => p.process(spans, sink, shared),
        }
    }
}

pub struct PluginChain {
    pub(super) engine: Arc<PluginEngine>,
    pub(super) config: PluginsConfig,
    /// The current plugins in file-name order. Swapped whole on reload; a batch in flight keeps
    /// the list it started with.
    pub(super) plugins: ArcSwap<Vec<Arc<Link>>>,
    /// Counters by file name, kept across versions.
    pub(super) stats: Mutex<BTreeMap<String, Arc<PluginStats>>>,
    /// Versions that failed to load, so an unchanged broken file is not retried on every event.
    pub(super) failed: Mutex<HashMap<String, VersionKey>>,
    pub(super) reload_lock: Mutex<()>,
    /// Rescans of the directory so far.
    pub(super) rescans: AtomicU64,
}

impl PluginChain {
    /// Creates the chain and loads the plugins in `config.dir`. A plugin that fails to load is
    /// logged; with `on-error = "drop"` (the default) it holds the chain closed until it loads,
    /// with `pass` the chain runs without it.
    pub fn new(config: PluginsConfig) -> Result<Arc<Self>> {
        let engine = Arc::new(PluginEngine::new(config.cache_dir.clone())?);
        let chain = Arc::new(PluginChain {
            engine,
            config,
            plugins: ArcSwap::from_pointee(Vec::new()),
            stats: Mutex::new(BTreeMap::new()),
            failed: Mutex::new(HashMap::new()),
            reload_lock: Mutex::new(()),
            rescans: AtomicU64::new(0),
        });
        if chain.config.dir.is_some() {
            chain.reload();
        }
        Ok(chain)
    }

    pub fn config(&self) -> &PluginsConfig {
        &self.config
    }

    /// Runs a batch through every plugin in order and returns the spans that remain.
    /// Batches larger than `batch_size` are split. Cheap when there are no plugins.
    pub fn process(&self, mut batch: Vec<Span>) -> Vec<Span> {
        let plugins = self.plugins.load();
        if plugins.is_empty() || batch.is_empty() {
            return batch;
        }
        let max = self.config.batch_size.max(1);
        let sink = &mut |_: usize, _: &Span, _: &str, _: &DropCause| {};
        may_block(|| {
            if batch.len() <= max {
                run_all(&plugins, &mut batch, sink, None);
                return batch;
            }
            let mut out = Vec::with_capacity(batch.len());
            while !batch.is_empty() {
                let rest = batch.split_off(max.min(batch.len()));
                let mut chunk = std::mem::replace(&mut batch, rest);
                run_all(&plugins, &mut chunk, sink, None);
                out.append(&mut chunk);
            }
            out
        })
    }

    /// Like [`process`](Self::process), also returning every dropped span with who dropped it
    /// and why.
    pub fn process_reporting(&self, batch: Vec<Span>) -> (Vec<Span>, Vec<DropReport>) {
        let (mut kept, mut dropped) = (Vec::new(), Vec::new());
        for outcome in self.process_outcomes(batch) {
            match outcome {
                Outcome::Kept(span) => kept.push(span),
                Outcome::Dropped(report) => dropped.push(report),
            }
        }
        (kept, dropped)
    }

    /// Like [`process`](Self::process), telling for every input span, in input order, whether
    /// it was kept or which plugin dropped it and why (for `plugin run`).
    pub fn process_outcomes(&self, mut batch: Vec<Span>) -> Vec<Outcome> {
        let plugins = self.plugins.load();
        let mut outcomes: Vec<Option<Outcome>> = Vec::new();
        outcomes.resize_with(batch.len(), || None);
        let max = self.config.batch_size.max(1);
        let mut start = 0;
        may_block(|| {
            while !batch.is_empty() {
                let rest = batch.split_off(max.min(batch.len()));
                let mut chunk = std::mem::replace(&mut batch, rest);
                let mut origins: Vec<usize> = (start..start + chunk.len()).collect();
                start += chunk.len();
                let sink = &mut |at: usize, span: &Span, plugin: &str, cause: &DropCause| {
                    outcomes[at] = Some(Outcome::Dropped(DropReport {
                        span: span.clone(),
                        plugin: plugin.to_string(),
                        cause: cause.clone(),
                    }));
                };
                run_all(&plugins, &mut chunk, sink, Some(&mut origins));
                for (at, span) in origins.into_iter().zip(chunk) {
                    outcomes[at] = Some(Outcome::Kept(span));
                }
            }
        });
        outcomes.into_iter().flatten().collect()
    }

    /// File names of the running plugins, in chain order.
    pub fn plugin_names(&self) -> Vec<String> {
        (self.plugins.load().iter())
            .filter(|link| matches!(***link, Link::Loaded(_)))
            .map(|link| link.name().to_string())
            .collect()
    }

    /// Plugins that failed to load and hold the chain closed (every span dropped), with why.
    pub fn blocking(&self) -> Vec<(String, String)> {
        (self.plugins.load().iter())
            .filter_map(|link| match &**link {
                Link::Closed(p) => Some((p.name.to_string(), p.error.clone())),
                Link::Loaded(_) => None,
            })
            .collect()
    }

    /// Rescans of the plugins directory since the chain was made (the first load is one).
    pub fn rescans(&self) -> u64 {
        self.rescans.load(Relaxed)
    }

    /// The chain's plugins, each with its imports and what they are granted.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for link in self.plugins.load().iter() {
            match &**link {
                Link::Loaded(p) => out.push_str(&format!(
                    "{} (on-error = {:?})\n{}",
                    p.name, p.on_error, p.report
                )),
                Link::Closed(p) => out.push_str(&format!(
                    "{} NOT LOADED, dropping every span until it loads: {}\n",
                    p.name, p.error
                )),
            }
        }
        out
    }

    /// Counters of every plugin seen since start, by file name.
    pub fn stats(&self) -> Vec<(String, StatsSnapshot)> {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(name, s)| (name.clone(), s.snapshot()))
            .collect()
    }

    pub fn plugin_stats(&self, name: &str) -> Option<StatsSnapshot> {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .map(|s| s.snapshot())
    }

    /// Components compiled so far (cache misses).
    pub fn compilations(&self) -> u64 {
        self.engine.compilations()
    }

    pub(super) fn stats_for(&self, name: &str) -> Arc<PluginStats> {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }
}

/// Runs `f`, which calls into plugins, where it may block: Wasm runs for up to its budget, and
/// WASI's blocking calls (a write to stderr, a traceback, reading a granted directory) wait on a
/// runtime of their own, which tokio refuses on a thread that drives async tasks (it panics).
/// On a multi-threaded runtime, such as the agent's, `block_in_place` allows it and hands this
/// worker's other tasks to another thread meanwhile.
fn may_block<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

thread_local! {
    /// Per thread, so concurrent batches never share (or wait for) an encoding buffer.
    static SHARED: RefCell<SharedBatch> = RefCell::new(SharedBatch::default());
}

/// Runs `batch` through `plugins`. `origins`, when given, holds each span's position in the
/// caller's input and is kept in step with the spans as plugins drop some; the sink then receives
/// those positions.
fn run_all(
    plugins: &[Arc<Link>],
    batch: &mut Vec<Span>,
    sink: &mut DropSink<'_>,
    origins: Option<&mut Vec<usize>>,
) {
    SHARED.with(|shared| match shared.try_borrow_mut() {
        Ok(mut shared) => run_all_with(plugins, batch, sink, origins, &mut shared),
        // Re-entered from a drop sink on this thread: use a buffer of its own.
        Err(_) => run_all_with(plugins, batch, sink, origins, &mut SharedBatch::default()),
    })
}

fn run_all_with(
    plugins: &[Arc<Link>],
    batch: &mut Vec<Span>,
    sink: &mut DropSink<'_>,
    mut origins: Option<&mut Vec<usize>>,
    shared: &mut SharedBatch,
) {
    shared.invalidate();
    for plugin in plugins {
        match origins.as_deref_mut() {
            None => plugin.process(batch, sink, shared),
            Some(origins) => {
                let mut dropped = Vec::new();
                plugin.process(
                    batch,
                    &mut |at, span, name, cause| {
                        dropped.push(at);
                        sink(origins[at], span, name, cause);
                    },
                    shared,
                );
                let mut dropped = dropped.into_iter().peekable();
                let mut at = 0;
                origins.retain(|_| {
                    let gone = dropped.next_if_eq(&at).is_some();
                    at += 1;
                    !gone
                });
            }
        }
        if batch.is_empty() {
            break;
        }
    }
}
