//! Plugin chain throughput and reload latency.
//!
//! `scripts/build-plugins.sh --rust-only && cargo bench -p http-autoinstrument --bench plugins`
//! Reports spans/s through filter -> redact -> route-template at batch sizes 1, 64 and 512,
//! each plugin alone (its per-span cost), a pass-through plugin (the cost of crossing into
//! Wasm), the same attribute-scanning plugin in three boundary shapes (`shape-*`, see
//! `shapes/mod.rs`), and the time from renaming a new version into place to the first span it
//! processes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod shapes;

use criterion::{BatchSize, Criterion, Throughput};
use http_autoinstrument::plugins::{PluginChain, PluginsConfig};
use http_autoinstrument::span::{Attribute, Resource, Span, SpanKind, SpanStatus};

fn plugin(name: &str) -> PathBuf {
    let dir = std::env::var_os("HAI_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"));
    let path = dir.join(format!("{name}.wasm"));
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

/// Realistic server spans: 10-11 semconv attributes, one in eight with a secret in the query.
fn spans(n: usize) -> Vec<Span> {
    let resource = Arc::new(Resource {
        attributes: vec![
            Attribute::new("service.name", "shop"),
            Attribute::new("process.pid", 4242i64),
        ],
    });
    (0..n)
        .map(|i| {
            let mut attributes = vec![
                Attribute::new("http.request.method", "GET"),
                Attribute::new("url.path", format!("/api/v1/users/{}/orders", 1000 + i)),
                Attribute::new("url.scheme", "http"),
                Attribute::new("http.response.status_code", 200i64),
                Attribute::new("server.address", "shop.internal"),
                Attribute::new("server.port", 8080i64),
                Attribute::new("client.address", "10.1.2.3"),
                Attribute::new("client.port", 52100i64),
                Attribute::new(
                    "user_agent.original",
                    "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0",
                ),
                Attribute::new("network.protocol.version", "1.1"),
            ];
            if i % 8 == 0 {
                attributes.push(Attribute::new("url.query", "page=2&token=abc123"));
            }
            Span {
                trace_id: [i as u8; 16],
                span_id: [7; 8],
                parent_span_id: None,
                name: "GET".into(),
                kind: SpanKind::Server,
                start_unix_nanos: 1_700_000_000_000_000_000,
                end_unix_nanos: 1_700_000_000_001_000_000,
                status: SpanStatus::Unset,
                attributes,
                resource: resource.clone(),
            }
        })
        .collect()
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
    let expected = packed.process(spans(512));
    assert_eq!(
        expected
            .iter()
            .filter(|s| s.attribute("bench.query-seen").is_some())
            .count(),
        64
    );
    assert_eq!(typed.process(spans(512)), expected, "typed shape differs");
    assert_eq!(
        records.process(spans(512)),
        expected,
        "records shape differs"
    );
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

/// Time from `rename` of a new version to the first span processed by it (watcher included).
fn reload_latency() {
    let (dir, chain) = chain(&[("10-p.wasm", "filter")]);
    let _watcher = chain.watch().unwrap();
    let versions = [plugin("route-template"), plugin("filter")];
    let mut samples = Vec::new();
    for round in 0..6 {
        let next = &versions[round % 2];
        let expect_route = round % 2 == 0;
        let tmp = dir.path().join(".next.tmp");
        std::fs::copy(next, &tmp).unwrap();
        let started = Instant::now();
        std::fs::rename(&tmp, dir.path().join("10-p.wasm")).unwrap();
        loop {
            let out = chain.process(spans(1));
            if out[0].attribute("http.route").is_some() == expect_route {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "reload never happened"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    println!(
        "reload: rename -> first span processed by the new version: median {:?}, min {:?}, max {:?} ({} swaps; includes the watcher's {} ms settle time; code already compiled once is cached)",
        samples[samples.len() / 2],
        samples[0],
        samples[samples.len() - 1],
        samples.len(),
        100
    );
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    throughput(&mut c);
    boundary_shapes(&mut c);
    c.final_summary();
    reload_latency();
}
