//! Reads the estimates criterion left in `target/criterion` after `cargo bench`.
use std::path::Path;

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct MicroBench {
    pub id: String,
    pub median_us: f64,
    /// Elements per iteration, when the benchmark declared a throughput.
    pub elements: Option<u64>,
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Every benchmark under `dir` whose group starts with one of `groups`, sorted by id.
pub fn collect(dir: &Path, groups: &[&str]) -> Vec<MicroBench> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "new") {
                let (Some(meta), Some(estimates)) = (
                    read_json(&path.join("benchmark.json")),
                    read_json(&path.join("estimates.json")),
                ) else {
                    continue;
                };
                let id = meta["full_id"].as_str().unwrap_or_default().to_string();
                if !groups.iter().any(|g| id.starts_with(g)) {
                    continue;
                }
                let Some(median_ns) = estimates["median"]["point_estimate"].as_f64() else {
                    continue;
                };
                out.push(MicroBench {
                    id,
                    median_us: median_ns / 1e3,
                    elements: meta["throughput"]["Elements"].as_u64(),
                });
            } else if path.file_name().is_some_and(|n| n != "report") {
                stack.push(path);
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}
