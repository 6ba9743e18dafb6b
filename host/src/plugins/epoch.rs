//! The clock of plugin time budgets: a thread that advances the engine's epoch (wasmtime's
//! epoch interruption) every `EPOCH_TICK`, but only while plugin code runs.
//!
//! Ticking all the time woke the agent many times a second with nothing to do, costing an idle
//! node with plugins loaded more than the rest of the agent. Whoever enters plugin
//! code holds a [`Running`] guard; with no guard held the thread parks. A budget is counted from
//! the first tick after the guard is taken, so parking never shortens one.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, Thread};
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::Engine;

/// How often the epoch advances while plugin code runs: the resolution of time budgets.
const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Epoch ticks for a budget, at least one full tick.
pub fn budget_ticks(budget: Duration) -> u64 {
    (budget.as_millis() as u64).div_ceil(EPOCH_TICK.as_millis() as u64) + 1
}

pub struct EpochTicker {
    shared: Arc<Shared>,
    thread: Thread,
}

struct Shared {
    /// Guards held: calls into plugin code in progress, on any thread.
    running: AtomicUsize,
    /// Epochs advanced so far.
    ticks: AtomicU64,
    /// Set by the thread right before it parks, cleared when it wakes.
    parked: AtomicBool,
    stop: AtomicBool,
}

/// Held while plugin code may run: the epoch advances until the last guard is dropped.
#[must_use]
pub struct Running<'a>(&'a EpochTicker);

impl EpochTicker {
    pub fn start(engine: &Engine) -> Result<EpochTicker> {
        let shared = Arc::new(Shared {
            running: AtomicUsize::new(0),
            ticks: AtomicU64::new(0),
            parked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let engine = engine.weak();
        let state = shared.clone();
        let handle = thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || loop {
                if state.stop.load(Ordering::Acquire) {
                    return;
                }
                if state.running.load(Ordering::Acquire) == 0 {
                    state.parked.store(true, Ordering::Release);
                    // Returns at once if a guard was taken since the check (unpark came first).
                    thread::park();
                    state.parked.store(false, Ordering::Release);
                    continue;
                }
                thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
                state.ticks.fetch_add(1, Ordering::Relaxed);
            })
            // Without the ticker no call could ever time out: no plugins rather than unbounded ones.
            .context("cannot start the plugin epoch thread")?;
        Ok(EpochTicker {
            shared,
            thread: handle.thread().clone(),
        })
    }

    /// Starts the clock (if it was stopped) until the guard is dropped.
    pub fn running(&self) -> Running<'_> {
        if self.shared.running.fetch_add(1, Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
        Running(self)
    }

    /// Epochs advanced since the start.
    #[cfg(test)]
    fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::Relaxed)
    }

    /// Whether the thread is parked (nothing runs, nothing ticks).
    #[cfg(test)]
    fn is_parked(&self) -> bool {
        self.shared.parked.load(Ordering::Acquire)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.shared.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait_until(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn ticks_only_while_plugin_code_runs() {
        let engine = Engine::default();
        let ticker = EpochTicker::start(&engine).unwrap();
        wait_until("the idle ticker parks", || ticker.is_parked());
        thread::sleep(EPOCH_TICK * 10);
        assert_eq!(ticker.ticks(), 0, "ticked with no plugin code running");

        let outer = ticker.running();
        let inner = ticker.running();
        wait_until("it ticks", || ticker.ticks() >= 2);
        drop(inner);
        let before = ticker.ticks();
        wait_until("it ticks under the remaining guard", || {
            ticker.ticks() > before
        });
        drop(outer);

        wait_until("it parks again", || ticker.is_parked());
        let parked_at = ticker.ticks();
        thread::sleep(EPOCH_TICK * 10);
        assert_eq!(ticker.ticks(), parked_at, "ticked after the last guard");
    }

    #[test]
    fn budget_is_at_least_one_full_tick_more_than_asked() {
        assert_eq!(budget_ticks(Duration::from_millis(1)), 2);
        assert_eq!(budget_ticks(Duration::from_millis(50)), 26);
    }
}
