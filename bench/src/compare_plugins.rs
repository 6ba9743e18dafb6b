//! Two builds of the example plugins side by side, for changes to the guest SDK or a plugin:
//! both chains in one process replay the same batch in turns on one thread, so both see the host
//! at the same speed, and the ratio of their times is steady to about a percent where two runs
//! one after the other differ by tens of percent here (see `compare` for the probes' version of
//! this).
use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use crate::replay::{load_chain, three_plugin_dir, Replay, Stage, BATCH};
use crate::stats::Summary;
use crate::workload::records;

/// One turn: each build's decode + 3 plugins replay, in spans per second.
#[derive(Clone, Copy, Debug)]
pub struct Turn {
    pub a_spans_per_second: f64,
    pub b_spans_per_second: f64,
}

impl Turn {
    /// B's time over A's: below 1 when B is faster.
    pub fn time_ratio(&self) -> f64 {
        self.a_spans_per_second / self.b_spans_per_second
    }
}

/// Replays `turns` turns of `batches` batches through the plugins built in `a` and in `b` (each a
/// directory of filter.wasm, redact.wasm and route-template.wasm), and prints the summary.
pub fn compare_plugins(a: &Path, b: &Path, turns: usize, batches: usize) -> Result<Vec<Turn>> {
    let (dir_a, dir_b) = (three_plugin_dir(a)?, three_plugin_dir(b)?);
    let replays = [
        Replay::new(load_chain(dir_a.path(), None)?, BATCH),
        Replay::new(load_chain(dir_b.path(), None)?, BATCH),
    ];
    let input = records(BATCH);
    // Warm both: instances, allocators, caches.
    for replay in &replays {
        for _ in 0..batches.max(1) {
            replay.batch(Stage::Plugins, &input);
        }
    }
    let spans_per_second = |replay: &Replay| {
        let started = Instant::now();
        for _ in 0..batches {
            replay.batch(Stage::Plugins, &input);
        }
        (batches * BATCH) as f64 / started.elapsed().as_secs_f64()
    };
    let mut results = Vec::with_capacity(turns);
    for turn in 0..turns {
        // Alternate which goes first, so neither always follows the other.
        let (a, b) = if turn % 2 == 0 {
            let a = spans_per_second(&replays[0]);
            (a, spans_per_second(&replays[1]))
        } else {
            let b = spans_per_second(&replays[1]);
            (spans_per_second(&replays[0]), b)
        };
        results.push(Turn {
            a_spans_per_second: a,
            b_spans_per_second: b,
        });
    }
    let summary = |f: fn(&Turn) -> f64| Summary::of(results.iter().map(f));
    if let (Some(sa), Some(sb), Some(ratio)) = (
        summary(|t| t.a_spans_per_second),
        summary(|t| t.b_spans_per_second),
        summary(Turn::time_ratio),
    ) {
        println!("decode + 3 plugins, {turns} turns of {batches} batches of {BATCH} spans each:");
        for (name, dir, s) in [("A", a, sa), ("B", b, sb)] {
            println!(
                "  {name} {}: {:.0} spans/s median ({:.0}-{:.0})",
                dir.display(),
                s.median,
                s.min,
                s.max
            );
        }
        println!(
            "  B's time / A's: {:.3} median ({:.3}-{:.3})",
            ratio.median, ratio.min, ratio.max
        );
    }
    Ok(results)
}
