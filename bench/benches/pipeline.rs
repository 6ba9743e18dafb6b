//! The agent's per-span stages, one at a time, on the replay workload (`src/workload.rs`):
//! record -> span (decode + semconv attributes), span -> SDK span data, SDK data -> OTLP bytes,
//! and the whole path through the three example plugins.
//!
//! `scripts/build-plugins.sh --rust-only && cargo bench -p http-autoinstrument-bench --bench pipeline`
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use http_autoinstrument_bench::replay::{
    encode_otlp, load_chain, three_plugin_dir, Replay, Stage, BATCH,
};
use http_autoinstrument_bench::workload::{records, SpanBuilder};

fn built_plugins() -> PathBuf {
    std::env::var_os("HAI_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"))
}

fn stages(c: &mut Criterion) {
    let input = records(BATCH);
    let builder = SpanBuilder::default();
    let spans = builder.spans(&input);

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("decode-and-build-512", |b| b.iter(|| builder.spans(&input)));
    group.bench_function("sdk-convert-512", |b| {
        b.iter_batched(
            || spans.clone(),
            http_autoinstrument::export::sdk_batches,
            BatchSize::LargeInput,
        )
    });
    group.bench_function("otlp-encode-512", |b| {
        b.iter_batched(|| spans.clone(), encode_otlp, BatchSize::LargeInput)
    });

    let dir = three_plugin_dir(&built_plugins()).expect("plugins directory");
    let replay = Replay::new(load_chain(dir.path()).expect("three plugins"), BATCH);
    for stage in Stage::ALL {
        group.bench_function(format!("replay-{}-512", stage.slug()), |b| {
            b.iter(|| replay.batch(stage, &input))
        });
    }
    group.finish();
}

/// The agent's allocator (host/src/main.rs), so the figures are the agent's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    stages(&mut c);
    c.final_summary();
}
