//! Reading request events out of the BPF ring buffer.
//!
//! Probes wake the agent only when a batch worth of bytes is waiting; otherwise the reader polls
//! on a short timer. Either way it drains everything available in one go and hands the events on
//! as one batch, each borrowed from the ring buffer: an event is over a kilobyte of which a
//! request uses a few hundred bytes, so whoever keeps one copies what it needs (span building:
//! its text). Served requests and client calls share the ring buffer, told apart by size.
use std::time::Duration;

use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use http_autoinstrument_common::{HttpClientEvent, HttpServerEvent};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use crate::decode::{decode_record, Record};

/// Most events handed on in one batch; the rest wait for the next drain.
pub const MAX_BATCH: usize = 4096;

pub struct RingReader {
    ring: AsyncFd<RingBuf<MapData>>,
    poll_interval: Duration,
}

/// Outcome of one drain.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub events: usize,
    pub malformed: usize,
}

/// Where the reader hands each drain: its events one at a time, then the drain's outcome.
pub trait EventSink {
    /// An event of the drain in progress, valid only during the call (it is the ring buffer's
    /// memory, released for the probes to reuse right after).
    fn event(&mut self, event: &HttpServerEvent);
    /// A client call of the drain in progress, valid only during the call, as `event`.
    fn client_event(&mut self, event: &HttpClientEvent);
    /// The drain that just handed over `drained.events` events is over.
    fn end_of_batch(&mut self, drained: Drained);
}

impl RingReader {
    pub fn new(ring: RingBuf<MapData>, poll_interval: Duration) -> Result<Self> {
        // SAFETY: the ring buffer owns its fd for as long as it lives, and the AsyncFd owns the
        // ring buffer, so the fd stays open and the same until the AsyncFd is dropped.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE)? };
        Ok(RingReader {
            ring,
            poll_interval,
        })
    }

    /// Reads until `shutdown` turns true, handing `sink` every non-empty drain. Drains once more
    /// after shutdown so nothing already written is lost.
    pub async fn run(
        mut self,
        mut shutdown: watch::Receiver<bool>,
        sink: &mut impl EventSink,
    ) -> Result<()> {
        let mut tick = tokio::time::interval(self.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stop = tokio::select! {
                guard = self.ring.readable_mut() => {
                    guard?.clear_ready();
                    false
                }
                _ = tick.tick() => false,
                _ = shutdown.changed() => true,
            };
            loop {
                let drained = drain(self.ring.get_mut(), sink);
                if drained != Drained::default() {
                    sink.end_of_batch(drained);
                }
                if drained.events < MAX_BATCH {
                    break;
                }
            }
            if stop || *shutdown.borrow() {
                return Ok(());
            }
        }
    }
}

fn drain(ring: &mut RingBuf<MapData>, sink: &mut impl EventSink) -> Drained {
    let mut drained = Drained::default();
    while drained.events < MAX_BATCH {
        let Some(item) = ring.next() else { break };
        match decode_record(&item) {
            Ok(Record::Server(event)) => {
                sink.event(&event);
                drained.events += 1;
            }
            Ok(Record::Client(event)) => {
                sink.client_event(&event);
                drained.events += 1;
            }
            Err(e) => {
                drained.malformed += 1;
                tracing::warn!("dropping a malformed event: {e}");
            }
        }
    }
    drained
}
