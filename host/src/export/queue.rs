//! The never-blocking hand-off from the capture side to the export task, and its counters.
//!
//! The bound is kept by an atomic count of spans held (reserved before sending), so the channel
//! itself can be unbounded: `submit` then costs a compare-and-swap and a lock-free send, and
//! never waits for the export task however slow the collector is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

use crate::span::Span;

/// At most one "queue full" warning per this interval; the warning carries the count.
const DROP_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// A snapshot of the exporter's counters.
///
/// Once the exporter is idle, `submitted == exported + dropped + failed + queued`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Spans passed to `submit`, accepted or not.
    pub submitted: u64,
    /// Spans the collector (or stdout) accepted.
    pub exported: u64,
    /// Spans refused by `submit` because the queue was full.
    pub dropped: u64,
    /// Spans given up on after they were queued: retries exhausted, permanent error, shutdown.
    pub failed: u64,
    /// Export attempts that were retries (not first attempts).
    pub retries: u64,
    /// Spans held by the exporter right now (waiting, batched or being exported).
    pub queued: u64,
}

impl std::fmt::Display for ExportStats {
    /// `key=value` pairs, the form the agent's stats lines use.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "spans_submitted={} spans_exported={} spans_dropped={} spans_failed={} export_retries={} spans_queued={}",
            self.submitted, self.exported, self.dropped, self.failed, self.retries, self.queued
        )
    }
}

#[derive(Debug)]
pub(crate) struct Counters {
    submitted: AtomicU64,
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    queued: AtomicU64,
    drop_notify: Notify,
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            submitted: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            drop_notify: Notify::new(),
        }
    }

    pub(crate) fn snapshot(&self) -> ExportStats {
        ExportStats {
            submitted: self.submitted.load(Ordering::Relaxed),
            exported: self.exported.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// `n` queued spans reached the collector.
    pub(crate) fn exported(&self, n: usize) {
        self.exported.fetch_add(n as u64, Ordering::Relaxed);
        self.queued.fetch_sub(n as u64, Ordering::Relaxed);
    }

    /// `n` queued spans are abandoned; logged every time (give-ups are rare and each one matters).
    pub(crate) fn gave_up(&self, n: usize, reason: &str) {
        self.failed.fetch_add(n as u64, Ordering::Relaxed);
        self.queued.fetch_sub(n as u64, Ordering::Relaxed);
        tracing::warn!(spans = n, "gave up exporting {n} spans: {reason}");
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Reserves room for up to `wanted` spans; returns how many fit.
    fn reserve(&self, wanted: u64, capacity: u64) -> u64 {
        let mut current = self.queued.load(Ordering::Relaxed);
        loop {
            let granted = wanted.min(capacity.saturating_sub(current));
            if granted == 0 {
                return 0;
            }
            match self.queued.compare_exchange_weak(
                current,
                current + granted,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return granted,
                Err(actual) => current = actual,
            }
        }
    }

    fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        // Only wakes `warn_about_drops`: logging may write to a blocked pipe, so it stays off
        // the submit path.
        self.drop_notify.notify_one();
    }
}

/// Logs queue-full drops at most once per `DROP_WARNING_INTERVAL`, with the count since the
/// previous warning. Runs alongside the export loop; never returns.
pub(crate) async fn warn_about_drops(counters: Arc<Counters>, capacity: usize) {
    let mut reported = 0;
    loop {
        counters.drop_notify.notified().await;
        let total = counters.dropped.load(Ordering::Relaxed);
        if total > reported {
            let since = total - reported;
            tracing::warn!(
                dropped = since,
                dropped_total = total,
                "export queue full ({capacity} spans): dropped {since} spans since the last \
                 warning; the collector is down or slower than the traffic"
            );
            reported = total;
        }
        tokio::time::sleep(DROP_WARNING_INTERVAL).await;
    }
}

/// The submitting half: cheap, never blocks, never awaits.
#[derive(Debug)]
pub(crate) struct SpanQueue {
    sender: mpsc::UnboundedSender<Vec<Span>>,
    counters: Arc<Counters>,
    capacity: u64,
}

impl SpanQueue {
    pub(crate) fn new(
        capacity: usize,
        counters: Arc<Counters>,
    ) -> (SpanQueue, mpsc::UnboundedReceiver<Vec<Span>>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let queue = SpanQueue {
            sender,
            counters,
            capacity: capacity as u64,
        };
        (queue, receiver)
    }

    /// Queues as many of `spans` as fit and drops (and counts) the rest, newest first.
    pub(crate) fn push(&self, mut spans: Vec<Span>) {
        let wanted = spans.len() as u64;
        if wanted == 0 {
            return;
        }
        self.counters.submitted.fetch_add(wanted, Ordering::Relaxed);
        let granted = self.counters.reserve(wanted, self.capacity);
        if granted < wanted {
            spans.truncate(granted as usize);
            self.counters.dropped(wanted - granted);
        }
        if granted > 0 {
            if let Err(unsent) = self.sender.send(spans) {
                // The export task is gone (runtime shut down): nothing will ever send these.
                let n = unsent.0.len() as u64;
                self.counters.queued.fetch_sub(n, Ordering::Relaxed);
                self.counters.dropped(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Resource;

    fn spans(n: usize) -> Vec<Span> {
        let resource = Arc::new(Resource::default());
        (0..n)
            .map(|i| Span::for_tests(resource.clone(), (i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn bound_is_kept_in_spans_and_overflow_is_counted() {
        let counters = Arc::new(Counters::new());
        let (queue, mut receiver) = SpanQueue::new(10, counters.clone());
        queue.push(spans(4));
        queue.push(spans(4));
        queue.push(spans(4)); // only 2 fit
        queue.push(spans(1)); // none fit
        queue.push(Vec::new());
        let stats = counters.snapshot();
        assert_eq!((stats.submitted, stats.queued, stats.dropped), (13, 10, 3));
        let sent: Vec<Vec<Span>> = std::iter::from_fn(|| receiver.try_recv().ok()).collect();
        assert_eq!(sent.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        // Within a partly accepted submit the first spans are kept.
        let ids: Vec<[u8; 8]> = sent[2].iter().map(|s| s.span_id).collect();
        assert_eq!(ids, vec![0u64.to_be_bytes(), 1u64.to_be_bytes()]);
        counters.exported(10);
        queue.push(spans(3));
        assert_eq!(receiver.try_recv().unwrap().len(), 3);
        assert_eq!(counters.snapshot().queued, 3);
    }

    #[test]
    fn spans_sent_after_the_task_is_gone_are_dropped_not_leaked() {
        let counters = Arc::new(Counters::new());
        let (queue, receiver) = SpanQueue::new(10, counters.clone());
        drop(receiver);
        queue.push(spans(2));
        let stats = counters.snapshot();
        assert_eq!((stats.submitted, stats.queued, stats.dropped), (2, 0, 2));
    }

    #[test]
    fn concurrent_submitters_never_exceed_the_bound() {
        let counters = Arc::new(Counters::new());
        let (queue, _receiver) = SpanQueue::new(1000, counters.clone());
        let queue = Arc::new(queue);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        queue.push(spans(3));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = counters.snapshot();
        assert_eq!(stats.submitted, 6000);
        assert_eq!(stats.queued, 1000);
        assert_eq!(stats.dropped, 5000);
    }
}
