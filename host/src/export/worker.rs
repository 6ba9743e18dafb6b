//! The export task: gathers queued spans into batches and hands them to the sink.

use std::future::pending;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use crate::span::Span;

use super::otlp::OtlpSink;
use super::queue::Counters;
use super::stdout::LineSink;
use super::ExportLimits;

/// Tells the task to flush and stop; carries the flush deadline.
pub(crate) struct ShutdownSignal {
    receiver: watch::Receiver<Option<Instant>>,
}

impl ShutdownSignal {
    pub(crate) fn new() -> (watch::Sender<Option<Instant>>, ShutdownSignal) {
        let (sender, receiver) = watch::channel(None);
        (sender, ShutdownSignal { receiver })
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        *self.receiver.borrow()
    }

    /// Completes once shutdown has been requested (at once if it already was). Never completes
    /// if the `Exporter` was dropped without `shutdown`: the closed span channel ends the task then.
    pub(crate) async fn requested(&mut self) {
        if self.receiver.wait_for(Option::is_some).await.is_err() {
            pending::<()>().await;
        }
    }
}

pub(crate) enum Sink {
    // Boxed: one long-lived value, and it keeps the enum small.
    Otlp(Box<OtlpSink>),
    Lines(LineSink),
}

impl Sink {
    async fn deliver(
        &mut self,
        spans: Vec<Span>,
        counters: &Counters,
        shutdown: &mut ShutdownSignal,
    ) {
        match self {
            Sink::Otlp(sink) => sink.deliver(spans, counters, shutdown).await,
            Sink::Lines(sink) => sink.deliver(spans, counters).await,
        }
    }
}

pub(crate) async fn run(
    mut receiver: mpsc::UnboundedReceiver<Vec<Span>>,
    mut sink: Sink,
    limits: ExportLimits,
    counters: Arc<Counters>,
    mut shutdown: ShutdownSignal,
) {
    let max_batch = limits.max_batch_size;
    let mut pending: Vec<Span> = Vec::new();
    'batches: loop {
        if pending.is_empty() {
            tokio::select! {
                biased;
                _ = shutdown.requested() => break 'batches,
                received = receiver.recv() => match received {
                    Some(spans) => pending = spans,
                    None => break 'batches,
                },
            }
        }
        // The batch leaves when full or `max_batch_delay` after it started filling, so a quiet
        // service's spans still show up promptly.
        let batch_deadline = tokio::time::Instant::now() + limits.max_batch_delay;
        while pending.len() < max_batch {
            tokio::select! {
                biased;
                _ = shutdown.requested() => break 'batches,
                received = receiver.recv() => match received {
                    Some(spans) => pending.extend(spans),
                    None => break 'batches,
                },
                _ = tokio::time::sleep_until(batch_deadline) => break,
            }
        }
        let rest = if pending.len() > max_batch {
            pending.split_off(max_batch)
        } else {
            Vec::new()
        };
        let batch = std::mem::replace(&mut pending, rest);
        sink.deliver(batch, &counters, &mut shutdown).await;
    }

    // Flush whatever is held. After `shutdown` the deadline bounds this; after a plain drop of
    // the `Exporter` the normal retry limits do.
    while let Ok(spans) = receiver.try_recv() {
        pending.extend(spans);
    }
    while !pending.is_empty() {
        let rest = pending.split_off(max_batch.min(pending.len()));
        let batch = std::mem::replace(&mut pending, rest);
        sink.deliver(batch, &counters, &mut shutdown).await;
    }
}
