//! Instructions per span of each pipeline stage, counted rather than timed: the replay of
//! `replay` run on valgrind's synthetic CPU (callgrind), counting only inside
//! [`measured_batches`]. Spans per second move with the host (on the same VM kind, one day's
//! figures were 27-40% below another's, same binary); the instructions a span takes barely do
//! (a few percent: span ids are random and hash seeds differ from run to run), so this is the
//! figure that shows what a change to the code did, and what instruction budget per span a
//! throughput target means on a given host.
//!
//! Each stage runs in a child process (this same binary under valgrind, see `main.rs`). The
//! plugins are compiled once, natively, into a cache the children load them from: compiling
//! them on the synthetic CPU would take a minute per child and count nothing of interest.
use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;

use crate::replay::{load_chain, three_plugin_dir, Replay, Stage, BATCH};
use crate::workload::records;

#[derive(Clone, Debug, Serialize)]
pub struct InstructionCount {
    pub stage: Stage,
    pub spans: u64,
    pub instructions: u64,
}

impl InstructionCount {
    pub fn per_span(&self) -> f64 {
        self.instructions as f64 / self.spans as f64
    }
}

/// Counts every stage over `batches` batches of [`BATCH`] spans. `built_plugins` is the
/// directory of built example plugins, `cache` where their compiled code is kept.
pub fn count(built_plugins: &Path, cache: &Path, batches: usize) -> Result<Vec<InstructionCount>> {
    // Fills the cache if the replay has not.
    let plugins = three_plugin_dir(built_plugins)?;
    load_chain(plugins.path(), Some(cache))?;
    let me = std::env::current_exe()?;
    let mut counts = Vec::new();
    for stage in Stage::ALL {
        let output = Command::new("valgrind")
            .args([
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                "--toggle-collect=http_autoinstrument_bench::instructions::measured_batches",
            ])
            .arg(&me)
            .args(["--count-instructions-of", stage.slug()])
            .arg("--plugins")
            .arg(built_plugins)
            .arg("--plugin-cache")
            .arg(cache)
            .arg("--batches")
            .arg(batches.to_string())
            .output()
            .context("running valgrind (scripts/setup.sh installs it)")?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            output.status.success(),
            "counting the instructions of {}: valgrind failed ({}): {}",
            stage.label(),
            output.status,
            stderr.trim()
        );
        let count = InstructionCount {
            stage,
            spans: (batches * BATCH) as u64,
            instructions: collected(&stderr)?,
        };
        eprintln!(
            "instructions: {} {:.0} per span",
            stage.label(),
            count.per_span()
        );
        counts.push(count);
    }
    Ok(counts)
}

/// The child: replays `batches` batches through `stage`. The first batch, which instantiates
/// the plugins and warms the allocator, runs before counting starts.
pub fn child(stage: &str, built_plugins: &Path, cache: &Path, batches: usize) -> Result<()> {
    let Some(stage) = Stage::ALL.into_iter().find(|s| s.slug() == stage) else {
        bail!("unknown stage {stage:?}");
    };
    let plugins = three_plugin_dir(built_plugins)?;
    let replay = Replay::new(load_chain(plugins.path(), Some(cache))?, BATCH);
    let input = records(BATCH);
    replay.batch(stage, &input);
    let spans = measured_batches(&replay, stage, &input, batches);
    ensure!(spans > 0 || batches == 0, "the replay produced no spans");
    Ok(())
}

/// What callgrind counts: `--toggle-collect` switches counting on when this is entered and off
/// when it returns. A plain loop, as a function of the same name inside it (a closure) would
/// switch it off again.
#[inline(never)]
fn measured_batches(replay: &Replay, stage: Stage, input: &[u8], batches: usize) -> usize {
    let mut spans = 0;
    for _ in 0..batches {
        spans += replay.batch(stage, input).0;
    }
    spans
}

/// The instruction count callgrind prints at exit (`==PID== Collected : N`).
fn collected(valgrind_stderr: &str) -> Result<u64> {
    valgrind_stderr
        .lines()
        .find_map(|line| {
            let (_, after) = line.split_once("Collected :")?;
            after.trim().parse().ok()
        })
        .with_context(|| format!("no instruction count in valgrind's output: {valgrind_stderr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_callgrinds_count() {
        let stderr = "==1== Callgrind, a call-graph generating cache profiler\n\
                      ==1== Events    : Ir\n==1== Collected : 17006326\n==1== \n\
                      ==1== I   refs:      17,006,326\n";
        assert_eq!(collected(stderr).unwrap(), 17_006_326);
        assert!(collected("==1== I   refs: 5\n").is_err());
    }
}
