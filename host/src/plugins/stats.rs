//! Per-plugin counters. They belong to the plugin's file name, so they continue across reloads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use super::failure::FailureKind;

#[derive(Default)]
pub struct PluginStats {
    calls: AtomicU64,
    spans_in: AtomicU64,
    spans_out: AtomicU64,
    dropped_by_plugin: AtomicU64,
    dropped_on_error: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    out_of_memory: AtomicU64,
    traps: AtomicU64,
    invalid_output: AtomicU64,
    suspended_batches: AtomicU64,
    not_loaded_batches: AtomicU64,
    truncated_values: AtomicU64,
    rejected_edits: AtomicU64,
    call_nanos: AtomicU64,
    loads: AtomicU64,
    load_failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A copy of a plugin's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Calls into the plugin (batches it actually saw).
    pub calls: u64,
    /// Spans that reached the plugin, including batches it failed on or skipped.
    pub spans_in: u64,
    pub spans_out: u64,
    /// Spans the plugin chose to drop.
    pub dropped_by_plugin: u64,
    /// Spans dropped by the `on-error = "drop"` policy.
    pub dropped_on_error: u64,
    /// Failed batches of every kind (the kinds follow).
    pub errors: u64,
    pub timeouts: u64,
    pub out_of_memory: u64,
    pub traps: u64,
    pub invalid_output: u64,
    /// Batches not sent to the plugin because it was suspended.
    pub suspended_batches: u64,
    /// Batches dropped because the plugin failed to load and its policy is `drop`.
    pub not_loaded_batches: u64,
    pub truncated_values: u64,
    pub rejected_edits: u64,
    /// Time spent in calls, including packing the batch and applying edits.
    pub call_nanos: u64,
    /// Versions loaded successfully, and failed loads.
    pub loads: u64,
    pub load_failures: u64,
    pub last_error: Option<String>,
}

impl PluginStats {
    pub fn record_batch(&self, spans_in: usize, spans_out: usize, called: bool, nanos: u64) {
        if called {
            self.calls.fetch_add(1, Relaxed);
        }
        self.spans_in.fetch_add(spans_in as u64, Relaxed);
        self.spans_out.fetch_add(spans_out as u64, Relaxed);
        self.call_nanos.fetch_add(nanos, Relaxed);
    }

    pub fn record_dropped_by_plugin(&self, n: usize) {
        self.dropped_by_plugin.fetch_add(n as u64, Relaxed);
    }

    pub fn record_edit_limits(&self, truncated: u64, rejected: u64) {
        self.truncated_values.fetch_add(truncated, Relaxed);
        self.rejected_edits.fetch_add(rejected, Relaxed);
    }

    pub fn record_failure(&self, kind: FailureKind, message: &str, dropped: usize) {
        self.dropped_on_error.fetch_add(dropped as u64, Relaxed);
        let counter = match kind {
            FailureKind::Suspended => {
                self.suspended_batches.fetch_add(1, Relaxed);
                return;
            }
            FailureKind::NotLoaded => {
                self.not_loaded_batches.fetch_add(1, Relaxed);
                return;
            }
            FailureKind::Timeout => &self.timeouts,
            FailureKind::OutOfMemory => &self.out_of_memory,
            FailureKind::Trap | FailureKind::Instantiation => &self.traps,
            FailureKind::InvalidOutput => &self.invalid_output,
            FailureKind::PluginError => &self.errors,
        };
        if kind != FailureKind::PluginError {
            counter.fetch_add(1, Relaxed);
        }
        self.errors.fetch_add(1, Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(format!("{kind}: {message}"));
    }

    pub fn record_load(&self, ok: bool, error: Option<&str>) {
        if ok {
            self.loads.fetch_add(1, Relaxed);
        } else {
            self.load_failures.fetch_add(1, Relaxed);
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                error.map(|e| format!("load: {e}"));
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            calls: self.calls.load(Relaxed),
            spans_in: self.spans_in.load(Relaxed),
            spans_out: self.spans_out.load(Relaxed),
            dropped_by_plugin: self.dropped_by_plugin.load(Relaxed),
            dropped_on_error: self.dropped_on_error.load(Relaxed),
            errors: self.errors.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            out_of_memory: self.out_of_memory.load(Relaxed),
            traps: self.traps.load(Relaxed),
            invalid_output: self.invalid_output.load(Relaxed),
            suspended_batches: self.suspended_batches.load(Relaxed),
            not_loaded_batches: self.not_loaded_batches.load(Relaxed),
            truncated_values: self.truncated_values.load(Relaxed),
            rejected_edits: self.rejected_edits.load(Relaxed),
            call_nanos: self.call_nanos.load(Relaxed),
            loads: self.loads.load(Relaxed),
            load_failures: self.load_failures.load(Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}
