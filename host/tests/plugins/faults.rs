//! Misbehaving plugins: the agent keeps running, the policy is applied, the counters are right.

use std::time::{Duration, Instant};

use http_autoinstrument::plugins::{DropCause, FailureKind, PluginChain, StatsSnapshot};
use http_autoinstrument::span::{AttributeValue, Span};

use crate::support::*;

const FAULTS: &str = "10-faults.wasm";

/// A chain with test-faults (policy `on_error`) followed by route-template, so we can see that
/// spans continue down the chain.
fn fault_chain(on_error: &str, extra: &str) -> Option<std::sync::Arc<PluginChain>> {
    let [faults, route] = built_all(["test-faults", "route-template"])?;
    let dir = PluginDir::new();
    dir.install(
        &faults,
        FAULTS,
        Some(&format!("on-error = \"{on_error}\"\n{extra}")),
    )
    .install(&route, "20-route.wasm", None);
    let mut config = dir.config();
    // Generous: debug builds lift large results slowly. The loop test sets its own budget.
    config.time_budget_ms = 2000;
    let chain = PluginChain::new(config).unwrap();
    assert_eq!(chain.plugin_names().len(), 2, "both plugins load");
    // Plugins live in memory once loaded: the directory can go.
    drop(dir);
    Some(chain)
}

fn faulty_batch(fault: &str) -> Vec<Span> {
    let r = resource();
    vec![
        with_attr(http_span(&r, "/users/1", None), "fault", fault.to_owned()),
        http_span(&r, "/users/2", None),
    ]
}

fn healthy_batch() -> Vec<Span> {
    let r = resource();
    vec![http_span(&r, "/users/3", None)]
}

fn stats(chain: &PluginChain) -> StatsSnapshot {
    chain.plugin_stats(FAULTS).unwrap()
}

/// Runs the fault, checks the policy and that the plugin recovers on the next batch.
fn check_fault(
    fault: &str,
    expected: FailureKind,
    counter: fn(&StatsSnapshot) -> u64,
    extra: &str,
) {
    // Fail open: the spans continue unchanged to the next plugin.
    let Some(chain) = fault_chain("pass", extra) else {
        return;
    };
    let started = Instant::now();
    let (out, dropped) = chain.process_reporting(faulty_batch(fault));
    let took = started.elapsed();
    assert_eq!(out.len(), 2, "{fault}: pass policy keeps the batch");
    assert!(dropped.is_empty());
    assert_eq!(
        out[0].name, "GET /users/{id}",
        "{fault}: later plugins still run"
    );
    let s = stats(&chain);
    assert_eq!(
        (s.errors, counter(&s), s.dropped_on_error),
        (1, 1, 0),
        "{fault}: {s:?}"
    );
    assert_eq!((s.spans_in, s.spans_out), (2, 2));
    assert!(
        s.last_error
            .as_deref()
            .unwrap()
            .starts_with(&expected.to_string()),
        "{s:?}"
    );
    assert!(took < Duration::from_secs(5), "{fault} took {took:?}");
    // The plugin recovers (a fresh instance after a trap).
    assert_eq!(chain.process(healthy_batch()).len(), 1);
    let s = stats(&chain);
    assert_eq!(
        (s.calls, s.errors, s.spans_in, s.spans_out),
        (2, 1, 3, 3),
        "{fault}: {s:?}"
    );

    // Fail closed: the batch is dropped and counted, with the reason.
    let Some(chain) = fault_chain("drop", extra) else {
        return;
    };
    let (out, dropped) = chain.process_reporting(faulty_batch(fault));
    assert!(out.is_empty(), "{fault}: drop policy drops the batch");
    assert_eq!(dropped.len(), 2);
    assert_eq!(dropped[0].cause, DropCause::OnError(expected));
    let s = stats(&chain);
    assert_eq!(
        (s.spans_in, s.spans_out, s.dropped_on_error, s.errors),
        (2, 0, 2, 1),
        "{s:?}"
    );
    assert_eq!(chain.process(healthy_batch()).len(), 1);
}

#[test]
fn endless_loop_times_out() {
    check_fault(
        "loop",
        FailureKind::Timeout,
        |s| s.timeouts,
        "time-budget-ms = 50\n",
    );
}

#[test]
fn trap_is_contained() {
    check_fault("trap", FailureKind::Trap, |s| s.traps, "");
}

#[test]
fn memory_bomb_hits_the_cap() {
    check_fault(
        "memory-bomb",
        FailureKind::OutOfMemory,
        |s| s.out_of_memory,
        "memory-limit-mib = 16\n",
    );
}

#[test]
fn plugin_error_applies_the_policy() {
    check_fault("error", FailureKind::PluginError, |s| s.errors, "");
}

#[test]
fn too_many_attributes_are_invalid_output() {
    check_fault(
        "many-attributes",
        FailureKind::InvalidOutput,
        |s| s.invalid_output,
        "",
    );
}

#[test]
fn an_edit_outside_the_batch_is_invalid_output() {
    check_fault(
        "bad-index",
        FailureKind::InvalidOutput,
        |s| s.invalid_output,
        "",
    );
}

#[test]
fn oversized_values_are_truncated() {
    let Some(chain) = fault_chain("pass", "") else {
        return;
    };
    let out = chain.process(faulty_batch("huge-value"));
    assert_eq!(out.len(), 2);
    let max = chain.config().max_value_bytes;
    match out[0].attribute("huge") {
        Some(AttributeValue::Str(s)) => assert_eq!(s.len(), max),
        other => panic!("huge attribute missing: {other:?}"),
    }
    let s = stats(&chain);
    assert_eq!((s.errors, s.truncated_values), (0, 1), "{s:?}");
}

/// The agent runs plugins from its async runtime's tasks; WASI's blocking calls (a Python
/// `print`, a traceback, reading a granted directory) must work there too, not panic the task.
#[test]
fn a_plugin_writing_to_stderr_from_inside_the_agents_runtime() {
    let Some(chain) = fault_chain("drop", "") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let out = runtime
        .block_on(async {
            let chain = chain.clone();
            tokio::spawn(async move { chain.process(faulty_batch("stderr")) }).await
        })
        .expect("the task processing the batch panicked");
    assert_eq!(out.len(), 2, "both spans pass");
    let s = stats(&chain);
    assert_eq!((s.calls, s.errors), (1, 0), "{s:?}");
}

#[test]
fn a_plugin_that_keeps_failing_is_suspended_with_backoff() {
    let Some([faults]) = built_all(["test-faults"]) else {
        return;
    };
    let dir = PluginDir::new();
    dir.install(&faults, FAULTS, Some("on-error = \"pass\"\n"));
    let mut config = dir.config();
    config.suspend_after_failures = 2;
    let chain = PluginChain::new(config).unwrap();
    for _ in 0..2 {
        chain.process(faulty_batch("trap"));
    }
    let before = stats(&chain);
    assert_eq!((before.calls, before.traps), (2, 2));
    // Suspended: not called, even for a healthy batch, and the policy (pass) applies.
    assert_eq!(chain.process(healthy_batch()).len(), 1);
    let s = stats(&chain);
    assert_eq!(
        (s.calls, s.suspended_batches, s.spans_in, s.spans_out),
        (2, 1, 5, 5),
        "{s:?}"
    );
    // After the backoff (1 s the first time) the plugin is called again, on probation: one
    // failure suspends it again, now for 2 s.
    std::thread::sleep(Duration::from_millis(1100));
    chain.process(faulty_batch("trap"));
    assert_eq!(chain.process(healthy_batch()).len(), 1);
    let s = stats(&chain);
    assert_eq!((s.calls, s.traps, s.suspended_batches), (3, 3, 2), "{s:?}");
    std::thread::sleep(Duration::from_millis(1100));
    chain.process(healthy_batch());
    assert_eq!(stats(&chain).calls, 3, "still suspended after 1.1 s");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(chain.process(healthy_batch()).len(), 1);
    assert_eq!(stats(&chain).calls, 4);
}

#[test]
fn broken_files_are_refused_with_a_clear_error_and_the_rest_keeps_running() {
    let Some(filter) = built("filter") else {
        return;
    };
    let dir = PluginDir::new();
    dir.install(&filter, "50-filter.wasm", None);
    let bytes = std::fs::read(&filter).unwrap();
    dir.write("10-truncated.wasm", &bytes[..bytes.len() / 2]);
    dir.write(
        "20-wrong-world.wasm",
        &wat::parse_str("(component)").unwrap(),
    );
    dir.write("30-core-module.wasm", &wat::parse_str("(module)").unwrap());
    dir.write("40-not-wasm.wasm", b"hello");
    // Optional plugins: the chain runs on without them (with drop, it would hold closed).
    for name in [
        "10-truncated",
        "20-wrong-world",
        "30-core-module",
        "40-not-wasm",
    ] {
        dir.write(&format!("{name}.toml"), b"on-error = \"pass\"\n");
    }
    let chain = dir.chain();
    assert_eq!(chain.plugin_names(), ["50-filter.wasm"]);
    let error = |name: &str| chain.plugin_stats(name).unwrap().last_error.unwrap();
    assert!(
        error("10-truncated.wasm").starts_with("load: "),
        "{}",
        error("10-truncated.wasm")
    );
    assert!(error("20-wrong-world.wasm")
        .contains("does not export http-autoinstrument:plugin/processor@0.2.0"));
    assert!(error("30-core-module.wasm").contains("core WebAssembly module"));
    assert!(error("40-not-wasm.wasm").contains("not a WebAssembly file"));
    let r = resource();
    let out = chain.process(vec![
        http_span(&r, "/healthz", None),
        http_span(&r, "/a", None),
    ]);
    assert_eq!(out.len(), 1);
}
