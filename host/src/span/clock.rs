//! Kernel monotonic time (what `bpf_ktime_get_ns` returns) to wall-clock time.
//!
//! The offset between the two clocks is measured from the tightest of a few back-to-back
//! readings and applied to every event: no per-span guesswork. It is measured again every few
//! seconds ([`WallClockSource`]), so a step of the wall clock after the agent started (NTP's
//! first sync on a node that just booted, an operator's `date -s`) shows in the spans from then
//! on, not only after a restart.
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

/// How often [`WallClockSource`] measures the offset again.
const REMEASURE_NS: u64 = 5_000_000_000;

#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    /// Wall-clock ns minus monotonic ns.
    offset_ns: i128,
}

fn monotonic_ns() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

fn realtime_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

impl WallClock {
    pub fn measure() -> Self {
        let mut best = (i128::MAX, 0i128);
        for _ in 0..5 {
            let before = monotonic_ns();
            let wall = realtime_ns();
            let after = monotonic_ns();
            let gap = after - before;
            if gap < best.0 {
                best = (gap, wall - (before + gap / 2));
            }
        }
        WallClock { offset_ns: best.1 }
    }

    pub fn to_unix_nanos(&self, monotonic_ns: u64) -> u64 {
        (monotonic_ns as i128 + self.offset_ns).clamp(0, u64::MAX as i128) as u64
    }

    pub fn now_monotonic_ns() -> u64 {
        monotonic_ns() as u64
    }
}

/// The current [`WallClock`], shared by the tasks that build spans.
pub struct WallClockSource {
    offset_ns: AtomicI64,
    measured_at_ns: AtomicU64,
}

impl WallClockSource {
    pub fn new() -> Self {
        let source = WallClockSource {
            offset_ns: AtomicI64::new(0),
            measured_at_ns: AtomicU64::new(0),
        };
        source.remeasure(WallClock::now_monotonic_ns());
        source
    }

    /// The clock to convert a batch's times with, measured within the last few seconds.
    pub fn current(&self) -> WallClock {
        let now = WallClock::now_monotonic_ns();
        if now.saturating_sub(self.measured_at_ns.load(Relaxed)) >= REMEASURE_NS {
            self.remeasure(now);
        }
        WallClock {
            offset_ns: i128::from(self.offset_ns.load(Relaxed)),
        }
    }

    fn remeasure(&self, now: u64) {
        let offset = WallClock::measure().offset_ns;
        self.offset_ns.store(
            offset.clamp(i64::MIN.into(), i64::MAX.into()) as i64,
            Relaxed,
        );
        self.measured_at_ns.store(now, Relaxed);
    }
}

impl Default for WallClockSource {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_now_to_now() {
        let clock = WallClock::measure();
        let wall = clock.to_unix_nanos(WallClock::now_monotonic_ns()) as i128;
        assert!(
            (wall - realtime_ns()).abs() < 5_000_000,
            "off by more than 5 ms"
        );
    }

    #[test]
    fn a_stale_offset_is_measured_again() {
        let source = WallClockSource::new();
        // As if measured long ago, before the wall clock was stepped by an hour.
        source.offset_ns.fetch_add(3_600_000_000_000, Relaxed);
        source.measured_at_ns.store(0, Relaxed);
        let wall = source
            .current()
            .to_unix_nanos(WallClock::now_monotonic_ns()) as i128;
        assert!(
            (wall - realtime_ns()).abs() < 5_000_000,
            "off by more than 5 ms"
        );
    }
}
