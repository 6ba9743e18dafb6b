//! The agent's own counters, shared between its tasks.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::attach::KernelCounters;

#[derive(Debug, Default)]
pub struct AgentStats {
    pub events_read: AtomicU64,
    pub events_malformed: AtomicU64,
    pub spans_built: AtomicU64,
    pub processes_attached: AtomicU64,
    pub attach_failures: AtomicU64,
    /// Processes traced right now (a gauge, set by the tracker after each scan).
    pub processes_traced: AtomicU64,
    /// Uprobe links attached right now (a gauge).
    pub probes_attached: AtomicU64,
    /// Executables with probes attached right now (a gauge).
    pub executables_attached: AtomicU64,
    /// Completed /proc scans; the first one means every target that existed at start is handled.
    pub scans_completed: AtomicU64,
    /// 1 while client calls carry their trace context (`attach::Propagation::On`), else 0.
    pub propagation_enabled: AtomicU64,
    pub kernel: Mutex<KernelCounters>,
}

impl AgentStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn summary(&self) -> String {
        let k = *self.kernel.lock().unwrap();
        format!(
            "processes_attached={} attach_failures={} probe_entry_hits={} probe_request_end_hits={} \
             events_submitted={} events_lost={} events_read={} events_malformed={} \
             ends_without_entry={} panics={} spans_not_sampled={} client_call_hits={} \
             spans_built={} header_write_hits={} traceparent_written={} \
             traceparent_replaced={}",
            self.processes_attached.load(Relaxed),
            self.attach_failures.load(Relaxed),
            k.entry_hits,
            k.request_end_hits,
            k.events_submitted,
            k.events_lost,
            self.events_read.load(Relaxed),
            self.events_malformed.load(Relaxed),
            k.ends_without_entry,
            k.panics,
            k.not_sampled,
            k.client_entry_hits + k.client_return_hits,
            self.spans_built.load(Relaxed),
            k.header_write_hits,
            k.traceparents_written,
            k.traceparents_replaced,
        )
    }
}
