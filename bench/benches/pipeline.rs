//! The agent's per-span stages, one at a time, on the replay workload (`src/workload.rs`):
//! record -> span (decode + semconv attributes), span -> SDK span data, SDK data -> OTLP bytes,
//! and the whole path through the three example plugins.
//!
//! `scripts/build-plugins.sh --rust-only && cargo bench -p http-autoinstrument-bench --bench pipeline`
mod common;

use common::built_plugins;
use criterion::{BatchSize, Criterion, Throughput};
use http_autoinstrument_bench::replay::{
    encode_otlp, load_chain, three_plugin_dir, Replay, Stage, BATCH,
};
use http_autoinstrument_bench::workload::{records, SpanBuilder};

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
    let replay = Replay::new(load_chain(dir.path(), None).expect("three plugins"), BATCH);
    for stage in Stage::ALL {
        group.bench_function(format!("replay-{}-512", stage.slug()), |b| {
            b.iter(|| replay.batch(stage, &input))
        });
    }
    group.finish();
}

fn main() {
    let mut c = common::criterion();
    stages(&mut c);
    c.final_summary();
}
