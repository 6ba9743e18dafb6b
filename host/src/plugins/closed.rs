//! A plugin that failed to load while its settings say `on-error = "drop"`: it holds its place in
//! the chain and drops every batch until a version of it loads. Skipping it instead would let the
//! spans it exists to redact go out because its file was broken when the agent started.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::span::Span;

use super::codec::SharedBatch;
use super::failure::FailureKind;
use super::instance::{DropCause, DropSink, VersionKey};
use super::stats::PluginStats;

/// How often the error is logged again while batches are being dropped.
const LOG_EVERY: Duration = Duration::from_secs(30);

pub struct ClosedPlugin {
    pub name: Arc<str>,
    /// The version that failed: an unchanged file keeps the chain closed without a retry.
    pub key: VersionKey,
    pub error: String,
    stats: Arc<PluginStats>,
    last_logged: Mutex<Option<Instant>>,
}

impl ClosedPlugin {
    pub fn new(name: &str, key: VersionKey, error: String, stats: Arc<PluginStats>) -> Self {
        ClosedPlugin {
            name: name.into(),
            key,
            error,
            stats,
            last_logged: Mutex::new(None),
        }
    }

    /// Drops the whole batch, counting it as the on-error policy's doing.
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
        let cause = DropCause::OnError(FailureKind::NotLoaded);
        for (position, span) in spans.iter().enumerate() {
            sink(position, span, &self.name, &cause);
        }
        spans.clear();
        shared.invalidate();
        self.stats.record_batch(n, 0, false, 0);
        self.stats
            .record_failure(FailureKind::NotLoaded, &self.error, n);
        let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::error!(
                plugin = &*self.name,
                "dropping every span until this plugin loads (it failed to load and its \
                 on-error is drop): {}",
                self.error
            );
        }
    }
}
