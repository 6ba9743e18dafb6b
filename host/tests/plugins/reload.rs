//! Hot reload while spans flow: add, write in progress, atomic rename, remove. No span is lost:
//! spans in == spans out + counted drops.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_autoinstrument::plugins::PluginChain;
use http_autoinstrument::span::Span;

use crate::support::*;

struct Flow {
    chain: Arc<PluginChain>,
    spans_in: AtomicU64,
    spans_out: AtomicU64,
}

impl Flow {
    fn run(&self, batch: Vec<Span>) -> Vec<Span> {
        self.spans_in
            .fetch_add(batch.len() as u64, Ordering::SeqCst);
        let out = self.chain.process(batch);
        self.spans_out.fetch_add(out.len() as u64, Ordering::SeqCst);
        out
    }

    fn batch(&self) -> Vec<Span> {
        let r = resource();
        (0..16)
            .map(|i| http_span(&r, if i % 4 == 0 { "/healthz" } else { "/users/42" }, None))
            .collect()
    }

    /// Sends probe batches until `seen` holds for one of the output spans; returns how long it took.
    fn wait_for(&self, what: &str, seen: impl Fn(&[Span]) -> bool) -> Duration {
        let started = Instant::now();
        // Generous: other tests compile 10+ MB components on the same cores.
        while started.elapsed() < Duration::from_secs(120) {
            if seen(&self.run(self.batch())) {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!(
            "timed out waiting for: {what}; plugins: {:?}",
            self.chain.stats()
        );
    }
}

/// Writes `bytes` to a hidden temporary name, then renames it onto `name` (atomic replace).
fn atomic_install(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[test]
fn hot_reload_while_spans_flow_loses_no_span() {
    let Some([filter, enrich, route]) = built_all(["filter", "enrich", "route-template"]) else {
        return;
    };
    let dir = PluginDir::new();
    let chain = dir.chain();
    let _watcher = chain.watch().unwrap();
    let flow = Arc::new(Flow {
        chain: chain.clone(),
        spans_in: AtomicU64::new(0),
        spans_out: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (flow, stop) = (flow.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                flow.run(flow.batch());
            }
        })
    };
    let healthz_dropped = |out: &[Span]| out.len() == 12;
    let env_is = |value: &'static str| {
        move |out: &[Span]| {
            out.iter()
                .all(|s| str_attr(s, "deployment.environment") == Some(value))
        }
    };

    // Add (atomic rename into place).
    atomic_install(
        dir.path(),
        "10-filter.wasm",
        &std::fs::read(&filter).unwrap(),
    );
    let added = flow.wait_for("filter added", healthz_dropped);

    // Add with a write in progress: half a file first, the rest later.
    std::fs::write(
        dir.path().join("30-enrich.toml"),
        "on-error = \"pass\"\n[settings]\nattributes = { \"deployment.environment\" = \"prod\" }\n",
    )
    .unwrap();
    let enrich_bytes = std::fs::read(&enrich).unwrap();
    std::fs::write(
        dir.path().join("30-enrich.wasm"),
        &enrich_bytes[..enrich_bytes.len() / 2],
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(flow
        .run(flow.batch())
        .iter()
        .all(|s| s.attribute("deployment.environment").is_none()));
    std::fs::write(dir.path().join("30-enrich.wasm"), &enrich_bytes).unwrap();
    flow.wait_for("enrich loaded after the write completed", env_is("prod"));
    assert!(
        chain.plugin_stats("30-enrich.wasm").unwrap().load_failures >= 1,
        "the half-written file was refused"
    );

    // Replace settings by atomic rename.
    atomic_install(
        dir.path(),
        "30-enrich.toml",
        b"[settings]\nattributes = { \"deployment.environment\" = \"staging\" }\n",
    );
    let settings_swap = flow.wait_for("new enrich settings", env_is("staging"));

    // Replace a plugin's code by atomic rename: the filter becomes route templating.
    atomic_install(
        dir.path(),
        "10-filter.wasm",
        &std::fs::read(&route).unwrap(),
    );
    let code_swap = flow.wait_for("route-template replaced filter", |out| {
        out.len() == 16 && out.iter().any(|s| s.name == "GET /users/{id}")
    });

    // Remove.
    std::fs::remove_file(dir.path().join("30-enrich.wasm")).unwrap();
    flow.wait_for("enrich removed", |out| {
        out.iter()
            .all(|s| s.attribute("deployment.environment").is_none())
    });

    stop.store(true, Ordering::Relaxed);
    background.join().unwrap();
    let drops: u64 = chain
        .stats()
        .iter()
        .map(|(_, s)| s.dropped_by_plugin + s.dropped_on_error)
        .sum();
    let (spans_in, spans_out) = (
        flow.spans_in.load(Ordering::SeqCst),
        flow.spans_out.load(Ordering::SeqCst),
    );
    assert!(spans_in > 1000, "spans flowed during the test: {spans_in}");
    assert!(drops > 0);
    assert_eq!(
        spans_in,
        spans_out + drops,
        "no span lost: in {spans_in}, out {spans_out}, counted drops {drops}"
    );
    let errors: u64 = chain.stats().iter().map(|(_, s)| s.errors).sum();
    assert_eq!(errors, 0);
    eprintln!(
        "reload (event settle included): add {added:?}, settings swap {settings_swap:?}, code swap {code_swap:?}; {spans_in} spans"
    );
}

/// One change to the directory is one rescan: the rescan's own opens of the directory and its
/// files must not count as changes (they once made it rescan ten times a second, forever).
#[test]
fn one_change_is_one_rescan() {
    let dir = PluginDir::new();
    dir.write("10-broken.wasm", b"not wasm");
    dir.write("10-broken.toml", b"on-error = \"pass\"\n");
    let chain = dir.chain();
    assert_eq!(chain.rescans(), 1, "the first load");
    let _watcher = chain.watch().unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(chain.rescans(), 1, "nothing changed yet");

    dir.write("10-broken.toml", b"on-error = \"pass\"\n# touched\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while chain.rescans() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(chain.rescans(), 2, "one change, one rescan");
}
