//! The ordered chain of plugins the agent runs every batch through.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use arc_swap::ArcSwap;

use crate::span::Span;

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

pub struct PluginChain {
    pub(super) engine: Arc<PluginEngine>,
    pub(super) config: PluginsConfig,
    /// The current plugins in file-name order. Swapped whole on reload; a batch in flight keeps
    /// the list it started with.
    pub(super) plugins: ArcSwap<Vec<Arc<PluginVersion>>>,
    /// Counters by file name, kept across versions.
    pub(super) stats: Mutex<BTreeMap<String, Arc<PluginStats>>>,
    /// Versions that failed to load, so an unchanged broken file is not retried on every event.
    pub(super) failed: Mutex<HashMap<String, VersionKey>>,
    pub(super) reload_lock: Mutex<()>,
}

impl PluginChain {
    /// Creates the chain and loads the plugins in `config.dir` (a plugin that fails to load is
    /// logged and skipped; the agent runs without it).
    pub fn new(config: PluginsConfig) -> Result<Arc<Self>> {
        let engine = Arc::new(PluginEngine::new(config.cache_dir.clone())?);
        let chain = Arc::new(PluginChain {
            engine,
            config,
            plugins: ArcSwap::from_pointee(Vec::new()),
            stats: Mutex::new(BTreeMap::new()),
            failed: Mutex::new(HashMap::new()),
            reload_lock: Mutex::new(()),
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
    pub fn process(&self, batch: Vec<Span>) -> Vec<Span> {
        self.process_with(batch, &mut |_, _, _| {})
    }

    /// Like [`process`](Self::process), also returning every dropped span with who dropped it
    /// and why (for `plugin run`).
    pub fn process_reporting(&self, batch: Vec<Span>) -> (Vec<Span>, Vec<DropReport>) {
        let mut dropped = Vec::new();
        let kept = self.process_with(batch, &mut |span, plugin, cause| {
            dropped.push(DropReport {
                span: span.clone(),
                plugin: plugin.to_string(),
                cause: cause.clone(),
            })
        });
        (kept, dropped)
    }

    fn process_with(&self, batch: Vec<Span>, sink: &mut DropSink<'_>) -> Vec<Span> {
        let plugins = self.plugins.load();
        if plugins.is_empty() || batch.is_empty() {
            return batch;
        }
        may_block(|| self.run_chunks(&plugins, batch, sink))
    }

    fn run_chunks(
        &self,
        plugins: &[Arc<PluginVersion>],
        mut batch: Vec<Span>,
        sink: &mut DropSink<'_>,
    ) -> Vec<Span> {
        let max = self.config.batch_size.max(1);
        if batch.len() <= max {
            run_all(plugins, &mut batch, sink);
            return batch;
        }
        let mut out = Vec::with_capacity(batch.len());
        while !batch.is_empty() {
            let rest = batch.split_off(max.min(batch.len()));
            let mut chunk = std::mem::replace(&mut batch, rest);
            run_all(plugins, &mut chunk, sink);
            out.append(&mut chunk);
        }
        out
    }

    /// File names of the running plugins, in chain order.
    pub fn plugin_names(&self) -> Vec<String> {
        self.plugins
            .load()
            .iter()
            .map(|p| p.name.to_string())
            .collect()
    }

    /// The running plugins, each with its imports and what they are granted.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for p in self.plugins.load().iter() {
            out.push_str(&format!(
                "{} (on-error = {:?})\n{}",
                p.name, p.on_error, p.report
            ));
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

fn run_all(plugins: &[Arc<PluginVersion>], batch: &mut Vec<Span>, sink: &mut DropSink<'_>) {
    SHARED.with(|shared| match shared.try_borrow_mut() {
        Ok(mut shared) => run_all_with(plugins, batch, sink, &mut shared),
        // Re-entered from a drop sink on this thread: use a buffer of its own.
        Err(_) => run_all_with(plugins, batch, sink, &mut SharedBatch::default()),
    })
}

fn run_all_with(
    plugins: &[Arc<PluginVersion>],
    batch: &mut Vec<Span>,
    sink: &mut DropSink<'_>,
    shared: &mut SharedBatch,
) {
    shared.invalidate();
    for plugin in plugins {
        plugin.process(batch, sink, shared);
        if batch.is_empty() {
            break;
        }
    }
}
