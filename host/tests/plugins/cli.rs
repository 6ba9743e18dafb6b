//! `plugin check` and `plugin run`, through the library functions the CLI calls.

use http_autoinstrument::plugins::cli;

use crate::support::*;

#[test]
fn check_reports_world_imports_and_grants() {
    let Some([filter, enrich]) = built_all(["filter", "enrich"]) else {
        return;
    };
    let report = cli::check(&filter).unwrap();
    assert!(report.init.is_ok());
    assert!(report
        .component
        .imports
        .iter()
        .all(|i| !i.import.starts_with("wasi:")));
    let text = report.to_string();
    assert!(
        text.contains("http-autoinstrument:plugin/processor@0.2.0"),
        "{text}"
    );

    let dir = PluginDir::new();
    dir.install(&enrich, "30-enrich.wasm", Some("[grants]\nenv = [\"POD\"]\n[settings]\nrequire_env = true\nfrom_env = { \"k\" = \"NOPE\" }\n"));
    let report = cli::check(&dir.path().join("30-enrich.wasm")).unwrap();
    let text = report.to_string();
    assert!(
        text.contains("wasi:cli/environment")
            && text.contains("only variables listed in [grants] env"),
        "{text}"
    );
    assert!(
        text.contains("wasi:filesystem/preopens") && text.contains("no directories unless"),
        "{text}"
    );
    assert!(text.contains("env [\"POD\"]"), "{text}");
    assert!(
        report.init.unwrap_err().contains("NOPE"),
        "init runs with the settings file"
    );
}

#[test]
fn check_refuses_a_wrong_world_with_the_fix() {
    let dir = PluginDir::new();
    dir.write("x.wasm", &wat::parse_str("(component)").unwrap());
    let err = format!("{:#}", cli::check(&dir.path().join("x.wasm")).unwrap_err());
    assert!(
        err.contains("x.wasm is not a valid plugin") && err.contains("span-processor"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        cli::check(&dir.path().join("missing.wasm")).unwrap_err()
    );
    assert!(
        err.contains("cannot read") && err.contains("missing.wasm"),
        "{err}"
    );
}

#[test]
fn run_prints_kept_and_dropped_spans_with_reasons() {
    let Some([filter, route]) = built_all(["filter", "route-template"]) else {
        return;
    };
    let dir = PluginDir::new();
    dir.install(&filter, "10-filter.wasm", None)
        .install(&route, "20-route.wasm", None);
    dir.write("30-broken.wasm", b"not wasm");
    let input = "# recorded spans\n\
        {\"name\":\"GET\",\"attributes\":{\"http.request.method\":\"GET\",\"url.path\":\"/healthz\"}}\n\
        {\"name\":\"GET\",\"attributes\":{\"http.request.method\":\"GET\",\"url.path\":\"/users/7\"}}\n";
    let config = cli::RunLimits {
        cache_dir: None,
        no_cache: true,
        time_budget_ms: None,
        memory_limit_mib: None,
        batch_size: None,
    }
    .config(dir.path());
    let run = |config: &_| {
        let mut out = Vec::new();
        let summary = cli::run(config, input.as_bytes(), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{out}");
        (summary, lines)
    };

    // The broken plugin's policy is the default, drop: it holds the chain closed. Lines come in
    // input order, whichever plugin dropped the span.
    let (summary, lines) = run(&config);
    assert_eq!(lines[0]["dropped"]["attributes"]["url.path"], "/healthz");
    assert_eq!(lines[0]["plugin"], "10-filter.wasm");
    assert_eq!(lines[0]["reason"], "dropped by the plugin");
    assert_eq!(lines[1]["dropped"]["name"], "GET /users/{id}");
    assert_eq!(lines[1]["plugin"], "30-broken.wasm");
    assert_eq!(
        lines[1]["reason"],
        "plugin failed (not-loaded) and its on-error policy is drop"
    );
    assert_eq!(
        (summary.spans_in, summary.spans_out, summary.dropped),
        (2, 0, 2)
    );
    assert_eq!(summary.load_errors.len(), 1);
    assert!(summary.to_string().contains("30-broken.wasm: NOT LOADED"));

    // With on-error = pass, the chain runs without it.
    dir.write("30-broken.toml", b"on-error = \"pass\"\n");
    let (summary, lines) = run(&config);
    assert_eq!(lines[0]["plugin"], "10-filter.wasm");
    assert_eq!(lines[1]["kept"]["name"], "GET /users/{id}");
    assert_eq!(
        (summary.spans_in, summary.spans_out, summary.dropped),
        (2, 1, 1)
    );
    assert_eq!(summary.load_errors.len(), 1);

    let err = format!(
        "{:#}",
        cli::run(&config, "{\"nam\":1}\n".as_bytes(), Vec::new()).unwrap_err()
    );
    assert!(err.contains("input line 1"), "{err}");
}

/// A CI that runs `plugin run` must see a plugin that did not load: the command fails.
#[test]
fn run_fails_when_a_plugin_did_not_load() {
    let dir = PluginDir::new();
    dir.write("10-broken.wasm", b"not wasm");
    dir.write("10-broken.toml", b"on-error = \"pass\"\n");
    let input = dir.path().join("spans.jsonl");
    std::fs::write(
        &input,
        "{\"name\":\"GET\",\"attributes\":{\"url.path\":\"/a\"}}\n",
    )
    .unwrap();
    let limits = cli::RunLimits {
        cache_dir: None,
        no_cache: true,
        time_budget_ms: Some(50),
        memory_limit_mib: Some(16),
        batch_size: None,
    };
    let command = cli::PluginCommand::Run {
        plugins: dir.path().to_path_buf(),
        input,
        limits,
    };
    let mut out = Vec::new();
    let err = format!("{:#}", cli::execute(command, &mut out).unwrap_err());
    assert!(err.contains("did not load: 10-broken.wasm"), "{err}");
    // The spans were still run and printed (the broken plugin's policy is pass).
    assert!(String::from_utf8(out).unwrap().contains("\"kept\""));
}
