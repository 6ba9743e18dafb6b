//! Plugin hot-reload latency: from `rename` of a new version into the plugins directory to the
//! first span processed by that version, through the agent's own watcher and chain.
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use http_autoinstrument::plugins::{PluginChain, PluginsConfig};

use crate::workload::{records, SpanBuilder};

/// Swaps `10-p.wasm` between filter and route-template `swaps` times (a span shows which one
/// ran: only route-template adds `http.route`), feeding one span at a time meanwhile.
pub fn reload_latencies(built_plugins: &Path, swaps: usize) -> Result<Vec<Duration>> {
    let dir = tempfile::tempdir()?;
    let live = dir.path().join("10-p.wasm");
    std::fs::copy(built_plugins.join("filter.wasm"), &live)?;
    let chain = PluginChain::new(PluginsConfig {
        dir: Some(dir.path().to_path_buf()),
        ..PluginsConfig::default()
    })?;
    let _watcher = chain.watch()?;
    let builder = SpanBuilder::default();
    let one = records(1);
    let versions = [
        built_plugins.join("route-template.wasm"),
        built_plugins.join("filter.wasm"),
    ];
    let mut samples = Vec::with_capacity(swaps);
    for swap in 0..swaps {
        let expect_route = swap % 2 == 0;
        let staged = dir.path().join(".next.tmp");
        std::fs::copy(&versions[swap % 2], &staged)?;
        let started = Instant::now();
        std::fs::rename(&staged, &live)?;
        loop {
            let out = chain.process(builder.spans(&one));
            if out
                .first()
                .and_then(|s| s.attribute("http.route"))
                .is_some()
                == expect_route
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "the new plugin version was never loaded: {:?}",
                    chain.stats()
                );
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        samples.push(started.elapsed());
    }
    Ok(samples)
}
