//! Plugin chain throughput.
//!
//! `scripts/build-plugins.sh && cargo bench -p http-autoinstrument-bench --bench plugins`
//! Reports spans/s through filter -> redact -> route-template at batch sizes 1, 64 and 512,
//! each plugin alone (its per-span cost), a pass-through plugin (the cost of crossing into
//! Wasm) and the same attribute-scanning plugin in three boundary shapes (`shape-*`, see
//! `shapes/mod.rs`). Reload latency is measured by the report (`src/reload.rs`). `sdk-filter-*`:
//! the same filter written with each SDK and by hand (needs the full `scripts/build-plugins.sh`).

use std::path::PathBuf;
use std::sync::Arc;

mod common;
mod shapes;
#[path = "../../host/tests/support/skip.rs"]
mod skip;

use criterion::{BatchSize, Criterion, Throughput};
use http_autoinstrument::plugins::{PluginChain, PluginsConfig};
use http_autoinstrument::span::Span;
use http_autoinstrument_bench::workload::{records, SpanBuilder};

fn plugin(name: &str) -> PathBuf {
    let path = common::built_plugins().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-plugins.sh",
        path.display()
    );
    path
}

fn chain(plugins: &[(&str, &str)]) -> (tempfile::TempDir, Arc<PluginChain>) {
    let dir = tempfile::tempdir().unwrap();
    for (file, name) in plugins {
        std::fs::copy(plugin(name), dir.path().join(file)).unwrap();
    }
    let config = PluginsConfig {
        dir: Some(dir.path().to_path_buf()),
        ..PluginsConfig::default()
    };
    let chain = PluginChain::new(config).unwrap();
    assert_eq!(
        chain.plugin_names().len(),
        plugins.len(),
        "{:?}",
        chain.stats()
    );
    (dir, chain)
}

/// The replay workload's spans (see `workload`): one in eight has a secret in the query.
fn spans(n: usize) -> Vec<Span> {
    SpanBuilder::default().spans(&records(n))
}

fn bench_chain(c: &mut Criterion, group_name: &str, plugins: &[(&str, &str)], batches: &[usize]) {
    let (_dir, chain) = chain(plugins);
    let mut group = c.benchmark_group(group_name);
    for &batch in batches {
        let input = spans(batch);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch-{batch}"), |b| {
            b.iter_batched(
                || input.clone(),
                |spans| chain.process(spans),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn throughput(c: &mut Criterion) {
    let three = [
        ("10-filter.wasm", "filter"),
        ("20-redact.wasm", "redact"),
        ("30-route.wasm", "route-template"),
    ];
    bench_chain(c, "chain-filter-redact-route", &three, &[1, 64, 512]);
    for name in [
        "filter",
        "redact",
        "route-template",
        "enrich",
        "test-faults",
    ] {
        bench_chain(c, &format!("alone-{name}"), &[("10-p.wasm", name)], &[512]);
    }
}

/// The same plugin logic in each boundary shape, on the same spans. Checks first that the three
/// produce the same spans, so they are measured doing the same work.
fn boundary_shapes(c: &mut Criterion) {
    let (_dir, packed) = chain(&[("10-p.wasm", "bench-shape-packed")]);
    let mut typed = shapes::Typed::load(&plugin("bench-shape-typed"));
    let mut records = shapes::Records::load(&plugin("bench-shape-records"));
    // Span ids are random: every shape gets the same spans.
    let same = spans(512);
    let expected = packed.process(same.clone());
    assert_eq!(
        expected
            .iter()
            .filter(|s| s.attribute("bench.query-seen").is_some())
            .count(),
        64
    );
    assert!(
        typed.process(same.clone()) == expected,
        "typed shape differs"
    );
    assert!(records.process(same) == expected, "records shape differs");
    for batch in [1, 512] {
        let input = spans(batch);
        let mut run = |name: &str, f: &mut dyn FnMut(Vec<Span>) -> Vec<Span>| {
            let mut group = c.benchmark_group(format!("shape-{name}"));
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(format!("batch-{batch}"), |b| {
                b.iter_batched(|| input.clone(), &mut *f, BatchSize::LargeInput)
            });
            group.finish();
        };
        run("packed", &mut |s| packed.process(s));
        run("typed", &mut |s| typed.process(s));
        run("records", &mut |s| records.process(s));
    }
}

/// `plugins/filter` as written with each SDK (Rust, Go, Python, JavaScript) and by hand in Python
/// and JavaScript (rows read and edits packed without an SDK), on the same 512 spans with the
/// same settings: the per-span cost of a language and its SDK. Checks first that every version
/// keeps the same spans, and that it has work to do (about one span in five is dropped).
const SDK_FILTERS: &[(&str, &str)] = &[
    ("rust", "filter"),
    ("go", "go-filter"),
    ("python", "bench-filter-py"),
    ("python-packed", "bench-filter-py-packed"),
    ("js", "bench-filter-js"),
    ("js-packed", "bench-filter-js-packed"),
];

fn sdk_filters(c: &mut Criterion) {
    // Users 1000-1099 of the workload's 1000-1511: 100 of 512 spans dropped; no span has an
    // `http.route`, so each lookup of it walks all of a span's attributes.
    let settings = "on-error = \"pass\"\nmemory-limit-mib = 256\n\
                    [settings]\nprefixes = [\"/api/v1/users/10\"]\n";
    let missing: Vec<_> = SDK_FILTERS
        .iter()
        .filter(|(_, name)| {
            !common::built_plugins()
                .join(format!("{name}.wasm"))
                .is_file()
        })
        .collect();
    if !missing.is_empty() {
        skip::skip(&format!(
            "sdk-filter-*: {missing:?} not built: run scripts/build-plugins.sh (not --rust-only)"
        ));
        return;
    }
    let input = spans(512);
    let mut expected = None;
    for (lang, name) in SDK_FILTERS {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(plugin(name), dir.path().join("10-p.wasm")).unwrap();
        std::fs::write(dir.path().join("10-p.toml"), settings).unwrap();
        let config = PluginsConfig {
            dir: Some(dir.path().to_path_buf()),
            ..PluginsConfig::default()
        };
        let chain = PluginChain::new(config).unwrap();
        assert_eq!(chain.plugin_names().len(), 1, "{name}: {:?}", chain.stats());
        let kept = chain.process(input.clone());
        let stats = chain.plugin_stats("10-p.wasm").unwrap();
        assert_eq!(stats.errors, 0, "{name}: {:?}", stats.last_error);
        assert_eq!(kept.len(), 412, "{name} keeps what the Rust filter keeps");
        let expected = expected.get_or_insert_with(|| kept.clone());
        assert!(
            kept == *expected,
            "{name} keeps other spans than the Rust filter"
        );
        let mut group = c.benchmark_group(format!("sdk-filter-{lang}"));
        group.throughput(Throughput::Elements(512));
        group.bench_function("batch-512", |b| {
            b.iter_batched(
                || input.clone(),
                |spans| chain.process(spans),
                BatchSize::LargeInput,
            )
        });
        group.finish();
    }
}

fn main() {
    let mut c = common::criterion();
    throughput(&mut c);
    boundary_shapes(&mut c);
    sdk_filters(&mut c);
    c.final_summary();
}
