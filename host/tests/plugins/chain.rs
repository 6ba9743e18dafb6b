//! The example plugins through the chain: behaviour, order, settings, grants, caching.

use http_autoinstrument::plugins::{DropCause, PluginChain};

use crate::support::*;

#[test]
fn filter_redact_and_route_template_run_in_file_name_order() {
    let Some([filter, redact, route]) = built_all(["filter", "redact", "route-template"]) else {
        return;
    };
    let dir = PluginDir::new();
    dir.install(&filter, "10-filter.wasm", Some("on-error = \"pass\"\n"))
        .install(&redact, "20-redact.wasm", None)
        .install(&route, "30-route.wasm", Some("on-error = \"pass\"\n"));
    let chain = dir.chain();
    assert_eq!(
        chain.plugin_names(),
        ["10-filter.wasm", "20-redact.wasm", "30-route.wasm"]
    );
    let r = resource();
    let (out, dropped) = chain.process_reporting(vec![
        http_span(&r, "/healthz", None),
        http_span(&r, "/users/123", Some("token=abc&page=2")),
        http_span(
            &r,
            "/orders/550e8400-e29b-41d4-a716-446655440000",
            Some("email=bob@example.com"),
        ),
    ]);
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].plugin, "10-filter.wasm");
    assert_eq!(dropped[0].cause, DropCause::ByPlugin);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].name, "GET /users/{id}");
    assert_eq!(str_attr(&out[0], "http.route"), Some("/users/{id}"));
    assert_eq!(
        str_attr(&out[0], "url.query"),
        Some("token=REDACTED&page=2")
    );
    assert_eq!(str_attr(&out[1], "url.query"), Some("email=REDACTED"));
    assert_eq!(out[1].name, "GET /orders/{id}");
    let filter_stats = chain.plugin_stats("10-filter.wasm").unwrap();
    assert_eq!(
        (
            filter_stats.calls,
            filter_stats.spans_in,
            filter_stats.spans_out
        ),
        (1, 3, 2)
    );
    assert_eq!(filter_stats.dropped_by_plugin, 1);
    let route_stats = chain.plugin_stats("30-route.wasm").unwrap();
    assert_eq!(
        (
            route_stats.spans_in,
            route_stats.spans_out,
            route_stats.errors
        ),
        (2, 2, 0)
    );
}

#[test]
fn order_changes_the_result() {
    let Some([filter, route]) = built_all(["filter", "route-template"]) else {
        return;
    };
    let drop_users = "[settings]\npaths = [\"/users/{id}\"]\n";
    // Route first: the filter sees the templated route and drops the span.
    let dir = PluginDir::new();
    dir.install(&route, "10-route.wasm", None)
        .install(&filter, "20-filter.wasm", Some(drop_users));
    let r = resource();
    assert!(dir
        .chain()
        .process(vec![http_span(&r, "/users/1", None)])
        .is_empty());
    // Filter first: it sees only the raw path, the span survives and is templated afterwards.
    let dir = PluginDir::new();
    dir.install(&filter, "10-filter.wasm", Some(drop_users))
        .install(&route, "20-route.wasm", None);
    let out = dir.chain().process(vec![http_span(&r, "/users/1", None)]);
    assert_eq!(out.len(), 1);
    assert_eq!(str_attr(&out[0], "http.route"), Some("/users/{id}"));
}

#[test]
fn enrich_reads_only_granted_environment_variables() {
    let Some(enrich) = built("enrich") else {
        return;
    };
    std::env::set_var("HTTP_AUTOINSTRUMENT_TEST_POD_NAME", "web-7f9c");
    std::env::set_var("HTTP_AUTOINSTRUMENT_TEST_NOT_GRANTED", "secret");
    let dir = PluginDir::new();
    dir.install(
        &enrich,
        "10-enrich.wasm",
        Some(
            "[grants]\nenv = [\"HTTP_AUTOINSTRUMENT_TEST_POD_NAME\"]\n[settings]\nattributes = { \"deployment.environment\" = \"prod\" }\n\
             from_env = { \"k8s.pod.name\" = \"HTTP_AUTOINSTRUMENT_TEST_POD_NAME\", \"leak\" = \"HTTP_AUTOINSTRUMENT_TEST_NOT_GRANTED\" }\n",
        ),
    );
    let chain = dir.chain();
    let out = chain.process(vec![http_span(&resource(), "/a", None)]);
    assert_eq!(str_attr(&out[0], "deployment.environment"), Some("prod"));
    assert_eq!(str_attr(&out[0], "k8s.pod.name"), Some("web-7f9c"));
    assert_eq!(
        out[0].attribute("leak"),
        None,
        "a variable that is not granted is invisible"
    );
}

#[test]
fn plugin_settings_errors_refuse_the_load_with_the_file_name() {
    let Some(filter) = built("filter") else {
        return;
    };
    let dir = PluginDir::new();
    dir.install(
        &filter,
        "10-filter.wasm",
        Some("[settings]\npaths = [\"no-slash\"]\n"),
    );
    let chain = PluginChain::new(dir.config()).unwrap();
    assert!(chain.plugin_names().is_empty());
    let stats = chain.plugin_stats("10-filter.wasm").unwrap();
    assert_eq!(stats.load_failures, 1);
    assert!(stats.last_error.unwrap().contains("must start with '/'"));
    let batch = || vec![http_span(&resource(), "/x", None)];
    // Its policy is the default, drop: nothing passes until it loads.
    assert!(chain.process(batch()).is_empty());
    // With on-error = pass, the agent runs on without the plugin.
    dir.install(
        &filter,
        "10-filter.wasm",
        Some("on-error = \"pass\"\n[settings]\npaths = [\"no-slash\"]\n"),
    );
    chain.reload();
    assert_eq!(chain.process(batch()).len(), 1);
}

#[test]
fn an_unchanged_plugin_is_compiled_once() {
    let Some(filter) = built("filter") else {
        return;
    };
    let dir = PluginDir::new();
    dir.install(&filter, "10-a.wasm", None)
        .install(&filter, "20-b.wasm", None);
    let chain = dir.chain();
    assert_eq!(chain.plugin_names().len(), 2);
    assert_eq!(chain.compilations(), 1);
    std::fs::write(dir.path().join("20-b.toml"), "on-error = \"pass\"\n").unwrap();
    let report = chain.reload();
    assert_eq!(
        report.loaded,
        ["20-b.wasm"],
        "a settings change reloads the plugin"
    );
    assert_eq!(report.unchanged, ["10-a.wasm"]);
    assert_eq!(chain.compilations(), 1, "same bytes: no new compilation");
}

#[test]
fn large_batches_are_split_and_keep_their_order() {
    let Some(route) = built("route-template") else {
        return;
    };
    let dir = PluginDir::new();
    dir.install(&route, "10-route.wasm", None);
    let mut config = dir.config();
    config.batch_size = 7;
    let chain = PluginChain::new(config).unwrap();
    let r = resource();
    let spans = (0..50)
        .map(|i| http_span(&r, &format!("/n/{i}/x"), None))
        .collect();
    let out = chain.process(spans);
    assert_eq!(out.len(), 50);
    assert!(out.iter().all(|s| s.name == "GET /n/{id}/x"));
    assert_eq!(chain.plugin_stats("10-route.wasm").unwrap().calls, 8);
}

/// A redaction plugin that is broken when the agent starts must not let spans out unredacted:
/// with `on-error = "drop"` (the default) it holds the chain closed, counting what it drops, until
/// a version of it loads; with `pass` the chain runs without it.
#[test]
fn a_plugin_that_fails_to_load_holds_the_chain_closed_until_it_loads() {
    let Some(redact) = built("redact") else {
        return;
    };
    let dir = PluginDir::new();
    dir.write("10-redact.wasm", b"not wasm yet");
    let chain = dir.chain();
    let r = resource();
    let batch = || vec![http_span(&r, "/login", Some("password=hunter2")); 8];

    assert!(
        chain.process(batch()).is_empty(),
        "nothing leaves unredacted"
    );
    let stats = chain.plugin_stats("10-redact.wasm").unwrap();
    assert_eq!(
        (
            stats.dropped_on_error,
            stats.not_loaded_batches,
            stats.calls
        ),
        (8, 1, 0)
    );
    assert_eq!(chain.blocking().len(), 1);
    assert!(chain.plugin_names().is_empty());
    assert!(
        chain.describe().contains("NOT LOADED"),
        "{}",
        chain.describe()
    );

    // Unchanged, it stays closed without another load attempt.
    chain.reload();
    assert!(chain.process(batch()).is_empty());
    assert_eq!(
        chain.plugin_stats("10-redact.wasm").unwrap().load_failures,
        1
    );

    // Its fixed version loads and runs.
    dir.install(&redact, "10-redact.wasm", None);
    chain.reload();
    let out = chain.process(batch());
    assert_eq!(out.len(), 8);
    assert!(out
        .iter()
        .all(|s| !str_attr(s, "url.query").unwrap_or("").contains("hunter2")));
    assert!(chain.blocking().is_empty());

    // With on-error = pass, a broken plugin is skipped.
    let open = PluginDir::new();
    open.write("10-broken.wasm", b"not wasm");
    open.write("10-broken.toml", b"on-error = \"pass\"\n");
    let chain = open.chain();
    assert_eq!(chain.process(batch()).len(), 8);
    assert!(chain.blocking().is_empty());

    // Settings that cannot be read say nothing about the policy: closed.
    let unreadable = PluginDir::new();
    unreadable.write("10-broken.wasm", b"not wasm");
    unreadable.write("10-broken.toml", b"on-error = \"sometimes\"\n");
    assert!(unreadable.chain().process(batch()).is_empty());
}
