//! Kernel monotonic time (what `bpf_ktime_get_ns` returns) to wall-clock time.
//!
//! The offset between the two clocks is measured once at start, from the tightest of a few
//! back-to-back readings, and applied to every event: no per-span guesswork.
use std::time::{SystemTime, UNIX_EPOCH};

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
}
