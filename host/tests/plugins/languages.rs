//! Plugins written in Python (componentize-py) and JavaScript (componentize-js) run in the same
//! chain as Rust ones: "any Wasm language" is tested, not claimed.

use http_autoinstrument::plugins::DropCause;
use http_autoinstrument::span::{AttributeValue, SpanStatus};

use crate::support::*;

#[test]
fn python_plugin_marks_slow_spans() {
    let Some(py) = built("py-slow-marker") else {
        return;
    };
    let dir = PluginDir::new();
    dir.install(
        &py,
        "40-slow.wasm",
        Some("on-error = \"pass\"\nmemory-limit-mib = 256\n[settings]\nthreshold_ms = 1\nerror_over_ms = 5\n"),
    );
    let chain = dir.chain();
    assert_eq!(
        chain.plugin_names(),
        ["40-slow.wasm"],
        "{:?}",
        chain.stats()
    );
    let r = resource();
    let fast = http_span(&r, "/a", None); // 2 ms long: slow, but not an error
    let mut very_slow = http_span(&r, "/b", None);
    very_slow.end_unix_nanos = very_slow.start_unix_nanos + 10_000_000;
    let mut quick = http_span(&r, "/c", None);
    quick.end_unix_nanos = quick.start_unix_nanos + 10_000;
    let out = chain.process(vec![fast, very_slow, quick]);
    assert_eq!(
        out[0].attribute("app.slow"),
        Some(&AttributeValue::Bool(true))
    );
    assert_eq!(out[0].status, SpanStatus::Unset);
    assert_eq!(
        out[1].status,
        SpanStatus::Error {
            description: "slower than 5 ms".into()
        }
    );
    assert_eq!(out[2].attribute("app.slow"), None);
    assert!(chain.plugin_stats("40-slow.wasm").unwrap().spans_out == 3);
    let report = chain.describe();
    assert!(
        report.contains("wasi:"),
        "Python components import WASI: {report}"
    );
}

#[test]
fn javascript_plugin_drops_bots() {
    let Some(js) = built("js-drop-bots") else {
        return;
    };
    let dir = PluginDir::new();
    dir.install(
        &js,
        "50-bots.wasm",
        Some("on-error = \"pass\"\nmemory-limit-mib = 256\n[settings]\nextra_patterns = [\"curl/\"]\n"),
    );
    let chain = dir.chain();
    assert_eq!(
        chain.plugin_names(),
        ["50-bots.wasm"],
        "{:?}",
        chain.stats()
    );
    let r = resource();
    let bot = with_attr(
        http_span(&r, "/a", None),
        "user_agent.original",
        "Mozilla/5.0 (compatible; Googlebot/2.1)",
    );
    let browser = with_attr(
        http_span(&r, "/b", None),
        "user_agent.original",
        "Mozilla/5.0 (X11) Firefox/128.0",
    );
    let curl = http_span(&r, "/c", None); // curl/8.5.0
    let (out, dropped) = chain.process_reporting(vec![bot, browser, curl]);
    assert_eq!(out.len(), 1);
    assert_eq!(str_attr(&out[0], "url.path"), Some("/b"));
    assert_eq!(dropped.len(), 2);
    assert!(dropped
        .iter()
        .all(|d| d.cause == DropCause::ByPlugin && d.plugin == "50-bots.wasm"));

    // Bad settings are refused by the plugin's init, with its message. Same bytes: the
    // reload compiles nothing.
    std::fs::write(
        dir.path().join("50-bots.toml"),
        "memory-limit-mib = 256\n[settings]\npaterns = [\"x\"]\n",
    )
    .unwrap();
    let report = chain.reload();
    assert_eq!(report.failed.len(), 1);
    assert_eq!(chain.compilations(), 1);
    assert_eq!(
        chain.plugin_names(),
        ["50-bots.wasm"],
        "the previous version keeps running"
    );
    let error = chain
        .plugin_stats("50-bots.wasm")
        .unwrap()
        .last_error
        .unwrap();
    assert!(error.contains("unknown setting \"paterns\""), "{error}");
}

/// A plugin built with the standard Go toolchain (guest-sdk/go): plugins/filter's logic in Go,
/// through the chain, with the same verdicts as the Rust filter on the same spans.
#[test]
fn go_plugin_filters_like_the_rust_filter() {
    let Some([go, rust]) = built_all(["go-filter", "filter"]) else {
        return;
    };
    let r = resource();
    let failing = with_attr(
        http_span(&r, "/healthz", None),
        "http.response.status_code",
        503i64,
    );
    let routed = with_attr(http_span(&r, "/users/7", None), "http.route", "/users/{id}");
    let spans = || {
        vec![
            http_span(&r, "/healthz", None),
            http_span(&r, "/readyz/", None),
            http_span(&r, "/users/1", None),
            http_span(&r, "/ping", Some("x=1")),
            failing.clone(),
            routed.clone(),
            http_span(&r, "/debug/pprof", None),
        ]
    };
    let settings =
        "on-error = \"pass\"\n[settings]\npaths = [\"/users/{id}\"]\nprefixes = [\"/debug/\"]\n";
    let kept = |wasm: &std::path::Path| {
        let dir = PluginDir::new();
        dir.install(wasm, "10-filter.wasm", Some(settings));
        let chain = dir.chain();
        assert_eq!(
            chain.plugin_names(),
            ["10-filter.wasm"],
            "{:?}",
            chain.stats()
        );
        let out = chain.process(spans());
        let stats = chain.plugin_stats("10-filter.wasm").unwrap();
        assert_eq!(stats.errors, 0, "{:?}", stats.last_error);
        (
            out.iter()
                .map(|s| str_attr(s, "url.path").unwrap().to_owned())
                .collect::<Vec<_>>(),
            chain.describe(),
        )
    };
    let (from_go, report) = kept(&go);
    assert_eq!(from_go, ["/users/1", "/healthz"]);
    assert_eq!(from_go, kept(&rust).0);
    assert!(
        !report.contains("wasi:"),
        "the Go adapter serves WASI itself: the component imports none: {report}"
    );

    // Bad settings are refused by the plugin's Init, with its message.
    let dir = PluginDir::new();
    dir.install(
        &go,
        "10-filter.wasm",
        Some("[settings]\npaths = [\"healthz\"]\n"),
    );
    let chain = dir.chain();
    assert!(chain.plugin_names().is_empty());
    let error = chain
        .plugin_stats("10-filter.wasm")
        .unwrap()
        .last_error
        .unwrap();
    assert!(error.contains("must start with '/'"), "{error}");
}

/// Many batches with long values: the Go runtime's collector runs at the end of `process`
/// (automatic collection is off, see guest-sdk/go/plugin/export_wasip1.go), and no call traps or
/// runs out of the default memory cap.
#[test]
fn go_plugin_survives_many_large_batches() {
    let Some(go) = built("go-filter") else {
        return;
    };
    let dir = PluginDir::new();
    dir.install(&go, "10-filter.wasm", None);
    let chain = dir.chain();
    let r = resource();
    let long = "q".repeat(2000);
    for round in 0..40 {
        let spans: Vec<_> = (0..512)
            .map(|i| http_span(&r, if i % 2 == 0 { "/healthz" } else { "/a" }, Some(&long)))
            .collect();
        let out = chain.process(spans);
        assert_eq!(
            out.len(),
            256,
            "round {round}: {:?}",
            chain.plugin_stats("10-filter.wasm")
        );
    }
    let stats = chain.plugin_stats("10-filter.wasm").unwrap();
    assert_eq!(
        (stats.calls, stats.errors),
        (40, 0),
        "{:?}",
        stats.last_error
    );
}
