//! End to end, as root, with real eBPF: Go fixture servers traced by the agent binary, requests
//! over HTTP/1.1, HTTPS and HTTP/2, spans checked at a real OTLP receiver.
//!
//! Not root: skipped with a note, except under CI=true where it is a failure.
mod support;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use support::agent::{
    curl, go_fixtures_versions, http_get, metric, metrics_address, newest_go, otlp_env,
    private_copy, require_root, root_and_newest_go, skip, Agent, AGENT, SPAN_TIMEOUT,
};
use support::go_fixtures::{build_go_server, require_go, GoServer, Variant};
use support::otlp_receiver::{OtlpReceiver, ReceivedSpan};
use support::plugins::built_plugin;

/// One scripted request: curl arguments and what the span must say.
struct Scripted {
    args: Vec<String>,
    method: &'static str,
    path: String,
    query: Option<&'static str>,
    scheme: &'static str,
    protocol: &'static str,
    status: i64,
    route: Option<&'static str>,
    user_agent: String,
    server_address: &'static str,
    server_port: u16,
}

fn script(server: &GoServer, go_minor: u32) -> Vec<Scripted> {
    let http = server.http_port;
    let https = server.https_port;
    // Go 1.22's ServeMux matches patterns and keeps the one that matched (Request.pat), which
    // Go 1.23 exports as Request.Pattern: both give http.route.
    let users_route = if go_minor >= 22 {
        Some("/users/{id}")
    } else {
        None
    };
    let status_route = if go_minor >= 22 {
        Some("/status/{code}")
    } else {
        None
    };
    let mut out = Vec::new();
    for (i, (scheme, port, proto_flag, protocol)) in [
        ("http", http, "--http1.1", "1.1"),
        ("https", https, "--http1.1", "1.1"),
        ("https", https, "--http2", "2"),
    ]
    .into_iter()
    .enumerate()
    {
        let ua = format!("e2e-agent/{i} ({protocol})");
        let base = format!("{scheme}://127.0.0.1:{port}");
        out.push(Scripted {
            args: vec![
                proto_flag.into(),
                "-A".into(),
                ua.clone(),
                format!("{base}/users/{}?token=abc&page=2", 40 + i),
            ],
            method: "GET",
            path: format!("/users/{}", 40 + i),
            query: Some("token=abc&page=2"),
            scheme,
            protocol,
            status: 200,
            route: users_route,
            user_agent: ua.clone(),
            server_address: "127.0.0.1",
            server_port: port,
        });
        out.push(Scripted {
            args: vec![
                proto_flag.into(),
                "-A".into(),
                ua.clone(),
                "-X".into(),
                "POST".into(),
                "--data-binary".into(),
                "0123456789".into(),
                format!("{base}/echo"),
            ],
            method: "POST",
            path: "/echo".into(),
            query: None,
            scheme,
            protocol,
            status: 200,
            route: if go_minor >= 22 { Some("/echo") } else { None },
            user_agent: ua.clone(),
            server_address: "127.0.0.1",
            server_port: port,
        });
        out.push(Scripted {
            args: vec![
                proto_flag.into(),
                "-A".into(),
                ua.clone(),
                format!("{base}/status/503"),
            ],
            method: "GET",
            path: "/status/503".into(),
            query: None,
            scheme,
            protocol,
            status: 503,
            route: status_route,
            user_agent: ua.clone(),
            server_address: "127.0.0.1",
            server_port: port,
        });
        // No port in Host: server.port is then the connection's local port, which the probe
        // reads only in this case. The path is sent percent-encoded; url.path is decoded, as the
        // handler sees it in Request.URL.Path.
        out.push(Scripted {
            args: vec![
                proto_flag.into(),
                "-A".into(),
                ua.clone(),
                "-H".into(),
                "Host: shop.internal".into(),
                format!("{base}/users/caf%C3%A9%20{}", 60 + i),
            ],
            method: "GET",
            path: format!("/users/café {}", 60 + i),
            query: None,
            scheme,
            protocol,
            status: 200,
            route: users_route,
            user_agent: ua.clone(),
            server_address: "shop.internal",
            server_port: port,
        });
        // A handler that hijacks the connection (as WebSocket servers do): its request ends when
        // it calls Hijack, not at finishRequest, which a hijacked connection never reaches. Go
        // wrote no status itself, so the span says 200, as for a handler that writes nothing.
        // HTTP/2 connections cannot be hijacked: the fixture answers 501.
        out.push(Scripted {
            args: vec![
                proto_flag.into(),
                "-A".into(),
                ua.clone(),
                format!("{base}/hijack"),
            ],
            method: "GET",
            path: "/hijack".into(),
            query: None,
            scheme,
            protocol,
            status: if protocol == "2" { 501 } else { 200 },
            route: if go_minor >= 22 {
                Some("/hijack")
            } else {
                None
            },
            user_agent: ua.clone(),
            server_address: "127.0.0.1",
            server_port: port,
        });
        // Enough headers for a header map of several groups (buckets), among them ten-byte
        // names other than User-Agent, which the probe must compare and pass over.
        let mut args = vec![proto_flag.into(), "-A".into(), ua.clone()];
        for n in 0..14 {
            args.extend(["-H".into(), format!("X-Extra-{n:02}: value {n}")]);
        }
        args.extend(["-H".into(), "X-Trace-Id: 4bf92f3577b34da6".into()]);
        args.extend(["-H".into(), "Accept-Foo: bar".into()]);
        args.push(format!("{base}/users/{}", 80 + i));
        out.push(Scripted {
            args,
            method: "GET",
            path: format!("/users/{}", 80 + i),
            query: None,
            scheme,
            protocol,
            status: 200,
            route: users_route,
            user_agent: ua,
            server_address: "127.0.0.1",
            server_port: port,
        });
    }
    out
}

fn find_span<'a>(spans: &'a [ReceivedSpan], s: &Scripted) -> &'a ReceivedSpan {
    spans
        .iter()
        .find(|span| {
            span.attr_str("url.path") == Some(s.path.as_str())
                && span.attr_str("url.scheme") == Some(s.scheme)
                && span.attr_str("network.protocol.version") == Some(s.protocol)
                && span.attr_str("http.request.method") == Some(s.method)
        })
        .unwrap_or_else(|| {
            panic!(
                "no span for {} {}://..{} over {}; got:\n{spans:#?}",
                s.method, s.scheme, s.path, s.protocol
            )
        })
}

fn check_span(span: &ReceivedSpan, s: &Scripted, server: &GoServer, service: &str) {
    let ctx = format!("{} {} {} {}", s.method, s.scheme, s.protocol, s.path);
    assert_eq!(span.kind, SpanKind::Server, "{ctx}");
    assert_eq!(
        span.attr_int("http.response.status_code"),
        Some(s.status),
        "{ctx}"
    );
    assert_eq!(span.attr_str("url.query"), s.query, "{ctx}");
    assert_eq!(span.attr_str("http.route"), s.route, "{ctx}");
    let expected_name = match s.route {
        Some(route) => format!("{} {route}", s.method),
        None => s.method.to_owned(),
    };
    assert_eq!(span.name, expected_name, "{ctx}");
    assert_eq!(
        span.attr_str("server.address"),
        Some(s.server_address),
        "{ctx}"
    );
    assert_eq!(
        span.attr_int("server.port"),
        Some(i64::from(s.server_port)),
        "{ctx}"
    );
    assert_eq!(span.attr_str("client.address"), Some("127.0.0.1"), "{ctx}");
    let client_port = span.attr_int("client.port").unwrap_or(0);
    assert!(
        client_port > 0 && client_port < 65536,
        "{ctx}: client.port {client_port}"
    );
    assert_eq!(
        span.attr_str("user_agent.original"),
        Some(s.user_agent.as_str()),
        "{ctx}"
    );
    assert_eq!(
        is_error(span),
        s.status >= 500,
        "{ctx}: status {:?}",
        span.status_code
    );
    if s.method == "POST" {
        assert_eq!(span.attr_int("http.request.body.size"), Some(10), "{ctx}");
        assert_eq!(span.attr_int("http.response.body.size"), Some(10), "{ctx}");
    }
    // Wall-clock timestamps: within the last minute, end after start, a sane duration.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(span.start_unix_nanos <= span.end_unix_nanos, "{ctx}");
    assert!(
        now - span.start_unix_nanos < 60_000_000_000,
        "{ctx}: start too old or in the future"
    );
    assert!(
        span.end_unix_nanos - span.start_unix_nanos < 5_000_000_000,
        "{ctx}"
    );
    assert_eq!(span.resource_str("service.name"), Some(service), "{ctx}");
    assert_eq!(
        span.resource_int("process.pid"),
        Some(i64::from(server.pid)),
        "{ctx}"
    );
    assert_eq!(
        span.resource_str("telemetry.sdk.name"),
        Some("http-autoinstrument"),
        "{ctx}"
    );
    assert!(span.resource_str("host.name").is_some(), "{ctx}");
    assert!(
        span.resource_str("process.executable.path").is_some(),
        "{ctx}"
    );
}

/// N scripted requests over HTTP/1.1, HTTPS and HTTP/2 -> exactly N spans, each checked.
fn scripted_requests_become_spans(go: &str, variant: Variant, grpc: bool) {
    if !require_root() {
        return;
    }
    if require_go(go).is_none() {
        return;
    }
    let binary = build_go_server(go, variant);
    let minor: u32 = go.split('.').nth(1).unwrap().parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let server = GoServer::start_with_env(&binary, &[], &[("OTEL_SERVICE_NAME", "e2e-shop")]);
    let mut agent = Agent::start(
        &["--pid".into(), server.pid.to_string()],
        &otlp_env(&receiver, grpc),
    );
    let attach_time = agent.wait_until_tracing(server.pid);
    eprintln!("go{go} {variant:?}: attached in {attach_time:?}");

    let script = script(&server, minor);
    for s in &script {
        let out = curl(&s.args);
        assert!(
            out.status.success(),
            "curl {:?}: {}",
            s.args,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let spans = rt.block_on(receiver.wait_for_spans(script.len(), SPAN_TIMEOUT));
    // Exactly N: nothing more arrives after a further flush interval.
    std::thread::sleep(Duration::from_millis(1500));
    let all = receiver.spans();
    assert_eq!(
        all.len(),
        script.len(),
        "expected exactly {} spans:\n{all:#?}",
        script.len()
    );
    for s in &script {
        check_span(find_span(&spans, s), s, &server, "e2e-shop");
    }
    let stats = agent.stop();
    assert!(stats.contains("events_lost=0"), "{stats}");
    // At most 2 probe hits per request (entry + its end), and exactly one end per request: the
    // request-end functions are entered once per request, a hijacked request included.
    let hits = |key: &str| -> u64 {
        stats
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {stats}"))
    };
    assert_eq!(
        hits("probe_request_end_hits"),
        script.len() as u64,
        "{stats}"
    );
    assert_eq!(hits("ends_without_entry"), 0, "{stats}");
    let per_request =
        (hits("probe_entry_hits") + hits("probe_request_end_hits")) as f64 / script.len() as f64;
    eprintln!("go{go}: {per_request} probe hits per request; {stats}");
    assert!(
        per_request <= 2.0,
        "{per_request} probe hits per request: {stats}"
    );
}

fn is_error(span: &ReceivedSpan) -> bool {
    span.status_code == StatusCode::Error
}

/// The full script on three releases and the three ways users build: a pure-Go build with
/// symbols and DWARF, a stripped one (`-s -w`), a stripped cgo + PIE one.
#[test]
fn go_1_21_stripped_over_grpc() {
    scripted_requests_become_spans("1.21", Variant::Stripped, true);
}

#[test]
fn go_1_22_cgo_pie_stripped_over_http_protobuf() {
    scripted_requests_become_spans("1.22", Variant::CgoPieStripped, false);
}

#[test]
fn go_1_23_over_http_protobuf() {
    scripted_requests_become_spans("1.23", Variant::Default, false);
}

#[test]
fn newest_go_cgo_pie_stripped_over_grpc() {
    let Some(newest) = newest_go() else {
        skip("no Go toolchain installed: run scripts/setup.sh");
        return;
    };
    scripted_requests_become_spans(&newest, Variant::CgoPieStripped, true);
}

/// A target started after the agent, then restarted with a new pid: both traced, by exe glob.
#[test]
fn late_and_restarted_targets_are_traced() {
    let Some(newest) = root_and_newest_go() else {
        return;
    };
    // A copy of its own: the glob must not match the servers of tests running alongside.
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("restarted-service");
    std::fs::copy(build_go_server(&newest, Variant::Default), &binary).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let glob = format!("{}/restarted-*", dir.path().display());
    let mut agent = Agent::start(&["--exe".into(), glob], &otlp_env(&receiver, false));
    agent.wait_for_log(&["agent running"], Duration::from_secs(20));

    let mut pids = HashSet::new();
    for round in 0..2 {
        let server = GoServer::start(&binary);
        let started = Instant::now();
        // How soon is a benchmark's question; this test asks that it happens at all.
        agent.wait_until_tracing(server.pid);
        eprintln!("round {round}: traced {:?} after start", started.elapsed());
        pids.insert(server.pid);
        let out = curl(&[format!(
            "http://127.0.0.1:{}/users/{round}",
            server.http_port
        )]);
        assert!(out.status.success());
        let spans = rt.block_on(receiver.wait_for_spans(round + 1, SPAN_TIMEOUT));
        let last = spans
            .iter()
            .find(|s| s.attr_str("url.path") == Some(&format!("/users/{round}")))
            .expect("span of the new process");
        assert_eq!(
            last.resource_int("process.pid"),
            Some(i64::from(server.pid))
        );
        drop(server); // killed: the next round is the restarted service
        agent.wait_for_log(
            &[
                "exited",
                &format!("pid={}", last.resource_int("process.pid").unwrap()),
            ],
            Duration::from_secs(5),
        );
    }
    assert_eq!(pids.len(), 2);
    agent.stop();
}

/// A handler that panics gives an error span; one that recovers gives one span, whenever it
/// returns; the goroutine's state expires and later requests on the same server are traced
/// correctly. A 4 KiB path is cut and marked, nothing overruns.
#[test]
fn panics_and_long_paths() {
    let Some(newest) = root_and_newest_go() else {
        return;
    };
    let binary = build_go_server(&newest, Variant::Default);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let server = GoServer::start(&binary);
    let mut agent = Agent::start(
        &["--pid".into(), server.pid.to_string()],
        &otlp_env(&receiver, true),
    );
    agent.wait_until_tracing(server.pid);
    let base = format!("http://127.0.0.1:{}", server.http_port);

    // The client sees the connection closed: curl fails, as it should.
    let out = curl(&[format!("{base}/panic")]);
    assert!(!out.status.success());
    // Handlers that recover by themselves: one returns at once, the other only after the agent
    // has given up waiting for it (1 s) and reported it as panicked. One span each.
    for path in ["/recover/quick", "/recover/slow"] {
        let out = curl(&[format!("{base}{path}")]);
        assert!(out.status.success());
    }
    let long = format!("/{}", "a".repeat(4095));
    let out = curl(&[format!("{base}{long}")]);
    assert!(out.status.success());
    for i in 0..3 {
        let out = curl(&[format!("{base}/users/{i}")]);
        assert!(out.status.success());
    }
    rt.block_on(receiver.wait_for_spans(7, SPAN_TIMEOUT));
    // A second span of the slow recovered request, if any were wrongly sent, arrives by then.
    std::thread::sleep(Duration::from_millis(1000));
    let spans = receiver.spans();
    assert_eq!(spans.len(), 7, "{spans:#?}");
    let only = |path: &str| {
        let mut found = spans
            .iter()
            .filter(|s| s.attr_str("url.path") == Some(path));
        let span = found.next().unwrap_or_else(|| panic!("no span for {path}"));
        assert!(found.next().is_none(), "two spans for {path}");
        span
    };
    let panic = only("/panic");
    assert!(is_error(panic));
    assert_eq!(panic.attr_str("error.type"), Some("panic"));
    let quick = only("/recover/quick");
    assert!(!is_error(quick));
    assert_eq!(quick.attr_int("http.response.status_code"), Some(200));
    let slow = only("/recover/slow");
    assert_eq!(slow.attr_str("error.type"), Some("panic"));
    let long_span = spans
        .iter()
        .find(|s| {
            s.attr_str("url.path")
                .is_some_and(|p| p.starts_with("/aaaa"))
        })
        .expect("a span for the long path");
    let path = long_span.attr_str("url.path").unwrap();
    assert!(
        path.ends_with('…') && path.len() < long.len(),
        "long path not cut: {} bytes",
        path.len()
    );
    assert_eq!(
        long_span.attr_str("http_autoinstrument.truncated"),
        Some("url.path")
    );
    assert_eq!(long_span.attr_int("http.response.status_code"), Some(200));
    for i in 0..3 {
        let path = format!("/users/{i}");
        assert!(spans
            .iter()
            .any(|s| s.attr_str("url.path") == Some(path.as_str())));
    }
    let stats = agent.stop();
    assert!(stats.contains("events_lost=0"), "{stats}");
}

/// Binaries the agent cannot trace get a clear message, and the agent goes on with the others.
#[test]
fn untraceable_binaries_are_reported_and_skipped() {
    let Some(newest) = root_and_newest_go() else {
        return;
    };
    let good = build_go_server(&newest, Variant::Default);
    let no_http = build_go_server(&newest, Variant::NoHttp);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let mut no_http_server = Command::new(&no_http)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let server = GoServer::start(&good);
    let mut agent = Agent::start(
        &[
            "--pid".into(),
            no_http_server.id().to_string(),
            "--pid".into(),
            sleeper.id().to_string(),
            "--pid".into(),
            server.pid.to_string(),
        ],
        &otlp_env(&receiver, false),
    );
    agent.wait_until_tracing(server.pid);
    agent.wait_for_log(
        &[
            "not traced",
            &format!("pid={}", no_http_server.id()),
            "does not use net/http",
        ],
        Duration::from_secs(5),
    );
    agent.wait_for_log(
        &["not traced", &format!("pid={}", sleeper.id())],
        Duration::from_secs(5),
    );
    let out = curl(&[format!("http://127.0.0.1:{}/", server.http_port)]);
    assert!(out.status.success());
    let spans = rt.block_on(receiver.wait_for_spans(1, SPAN_TIMEOUT));
    assert_eq!(
        spans[0].resource_int("process.pid"),
        Some(i64::from(server.pid))
    );
    agent.stop();
    for child in [&mut sleeper, &mut no_http_server] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Requests of two traced processes that interleave within one read of the ring buffer (a long
/// poll interval gathers them) each get their own process's resource.
#[test]
fn interleaved_requests_of_two_processes_keep_their_own_resources() {
    let Some(newest) = root_and_newest_go() else {
        return;
    };
    // Selected by executable, the file is attached whole: a copy of its own, so that the servers
    // of tests running alongside are not traced too.
    let (_dir, binary) = private_copy(&build_go_server(&newest, Variant::Default), "interleaved");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let servers = [GoServer::start(&binary), GoServer::start(&binary)];
    let mut agent = Agent::start(
        &[
            "--exe".into(),
            binary.display().to_string(),
            "--poll-interval-ms".into(),
            "1000".into(),
        ],
        &otlp_env(&receiver, false),
    );
    for server in &servers {
        agent.wait_until_tracing(server.pid);
    }
    const ROUNDS: usize = 5;
    for _ in 0..ROUNDS {
        for server in &servers {
            let url = format!("http://127.0.0.1:{}/users/{}", server.http_port, server.pid);
            assert!(curl(&[url]).status.success());
        }
    }
    let spans = rt.block_on(receiver.wait_for_spans(2 * ROUNDS, SPAN_TIMEOUT));
    assert_eq!(spans.len(), 2 * ROUNDS);
    for span in &spans {
        let pid = span.resource_int("process.pid").unwrap();
        assert_eq!(
            span.attr_str("url.path"),
            Some(format!("/users/{pid}").as_str()),
            "a span of one process carries the other's resource"
        );
    }
    agent.stop();
}

/// Selecting by listening port traces the process that listens there, and only it.
#[test]
fn selects_targets_by_listening_port() {
    let Some(newest) = root_and_newest_go() else {
        return;
    };
    let binary = build_go_server(&newest, Variant::Default);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let wanted = GoServer::start(&binary);
    let other = GoServer::start(&binary);
    let mut agent = Agent::start(
        &["--port".into(), wanted.https_port.to_string()],
        &otlp_env(&receiver, true),
    );
    agent.wait_until_tracing(wanted.pid);
    for server in [&other, &wanted] {
        let out = curl(&[format!("http://127.0.0.1:{}/health", server.http_port)]);
        assert!(out.status.success());
    }
    rt.block_on(receiver.wait_for_spans(1, SPAN_TIMEOUT));
    // Give a span of the other server, if any were wrongly made, time to arrive too.
    std::thread::sleep(Duration::from_millis(1000));
    let spans = receiver.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert!(spans
        .iter()
        .all(|s| s.resource_int("process.pid") == Some(i64::from(wanted.pid))));
    assert!(!agent.log_text().contains(&format!("pid={}", other.pid)));
    agent.stop();
}

/// A glob that cannot match (its `*` stops at `/`, as in a shell) is not silent: once the first
/// scans have found nothing, the agent says so, naming the Go service it could trace and the
/// glob that would.
#[test]
fn a_selector_that_matches_nothing_says_so_once() {
    let Some(newest) = root_and_newest_go() else {
        return;
    };
    let (dir, binary) = private_copy(&build_go_server(&newest, Variant::Default), "svc");
    let server = GoServer::start(&binary);
    let mut agent = Agent::start(&["--exe".into(), "*svc".into()], &[]);
    let path = dir.path().join("svc");
    agent.wait_for_log(
        &[
            "no process matches --exe '*svc'",
            &format!("--exe '**/*svc' matches {}", path.display()),
        ],
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_secs(1));
    let log = agent.log_text();
    agent.stop();
    assert_eq!(log.matches("no process matches").count(), 1, "{log}");
    assert!(!log.contains(&format!("pid={}", server.pid)), "{log}");
}

/// A position-independent executable is traced where the process loaded it, also when its path
/// has a space and the file was replaced on disk since it started (a deploy before the restart:
/// /proc/PID/exe then ends in " (deleted)").
#[test]
fn traces_a_pie_server_whose_file_was_replaced() {
    let Some(newest) = root_and_newest_go() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("shop server");
    std::fs::copy(build_go_server(&newest, Variant::Pie), &binary).unwrap();
    let server = GoServer::start(&binary);
    std::fs::remove_file(&binary).unwrap();
    let exe = std::fs::read_link(format!("/proc/{}/exe", server.pid)).unwrap();
    assert!(exe.to_string_lossy().ends_with(" (deleted)"), "{exe:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let mut agent = Agent::start(
        &["--pid".into(), server.pid.to_string()],
        &otlp_env(&receiver, true),
    );
    agent.wait_until_tracing(server.pid);
    let out = curl(&[format!("http://127.0.0.1:{}/users/7", server.http_port)]);
    assert!(out.status.success());
    let spans = rt.block_on(receiver.wait_for_spans(1, SPAN_TIMEOUT));
    assert_eq!(spans[0].attr_str("url.path"), Some("/users/7"));
    assert_eq!(spans[0].attr_int("http.response.status_code"), Some(200));
    agent.stop();
}

/// A service killed while serving and calling leaves none of its requests or calls behind in the
/// probes' tables: the agent frees their slots when it detaches (nothing else would, and a full
/// table sends requests and calls to the slower overflow maps).
#[test]
fn a_service_killed_while_serving_leaves_no_request_or_call_behind() {
    let Some(newest) = root_and_newest_go() else {
        return;
    };
    let binary = build_go_server(&newest, Variant::Default);
    let server = GoServer::start(&binary);
    let pid = server.pid;
    let mut agent = Agent::start(&["--pid".into(), pid.to_string()], &[]);
    agent.wait_until_tracing(pid);
    let sleep = format!("http://127.0.0.1:{}/sleep?for=30s", server.http_port);
    // Three requests asleep, and one whose handler calls the service's own /sleep: five
    // requests and a call in flight.
    let call = format!(
        "http://127.0.0.1:{0}/call?url=http://127.0.0.1:{0}/sleep%3Ffor%3D30s",
        server.http_port
    );
    let urls = [&sleep, &sleep, &sleep, &call];
    let mut clients: Vec<Child> = urls
        .iter()
        .map(|url| {
            Command::new("curl")
                .args(["-sS", "-o", "/dev/null", "--max-time", "10", url])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("running curl")
        })
        .collect();
    // Long enough for the three requests to be in their handler.
    std::thread::sleep(Duration::from_millis(1000));
    drop(server); // SIGKILL
    agent.wait_for_log(
        &[
            "process exited",
            &format!("pid={pid}"),
            "unfinished_requests=5",
            "unfinished_calls=1",
        ],
        Duration::from_secs(10),
    );
    for client in &mut clients {
        let _ = client.wait();
    }
    agent.stop();
}

/// A service started after the agent that opens its port only after its start-up work (here
/// 1.5 s: several scans see it without the port) is traced once it listens.
#[test]
fn traces_a_service_that_opens_the_selected_port_after_it_started() {
    let Some(newest) = root_and_newest_go() else {
        return;
    };
    let binary = build_go_server(&newest, Variant::Default);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let port = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().port()
    };
    let mut agent = Agent::start(
        &["--port".into(), port.to_string()],
        &otlp_env(&receiver, true),
    );
    // Scanning from here on: the scans before the server listens see it without the port.
    agent.wait_for_log(&["agent running"], Duration::from_secs(20));
    let address = format!("127.0.0.1:{port}");
    let server = GoServer::start_with_args(&binary, &["-http", &address, "-listen-after", "1.5s"]);
    agent.wait_until_tracing(server.pid);
    let out = curl(&[format!("http://{address}/health")]);
    assert!(out.status.success());
    rt.block_on(receiver.wait_for_spans(1, SPAN_TIMEOUT));
    let spans = receiver.spans();
    assert_eq!(
        spans[0].resource_int("process.pid"),
        Some(i64::from(server.pid))
    );
    agent.stop();
}

/// /metrics, /healthz and /readyz after real traffic through a plugin: counters match what was
/// sent.
#[test]
fn metrics_and_health_endpoints_after_traffic() {
    if !require_root() {
        return;
    }
    let Some(enrich) = built_plugin("enrich") else {
        return;
    };
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(enrich, plugins.path().join("10-enrich.wasm")).unwrap();
    let Some(newest) = newest_go() else {
        skip("no Go toolchain installed: run scripts/setup.sh");
        return;
    };
    let binary = build_go_server(&newest, Variant::Default);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let server = GoServer::start(&binary);
    let mut agent = Agent::start(
        &[
            "--pid".into(),
            server.pid.to_string(),
            "--metrics-address".into(),
            "127.0.0.1:0".into(),
            "--plugins".into(),
            plugins.path().display().to_string(),
        ],
        &otlp_env(&receiver, true),
    );
    let address = metrics_address(&mut agent);
    agent.wait_until_tracing(server.pid);
    let get = |path: &str| http_get(&address, path);
    assert_eq!(get("/healthz"), ("200".into(), "ok\n".into()));
    let (code, body) = get("/readyz");
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("1 processes traced"), "{body}");

    const REQUESTS: u64 = 7;
    for _ in 0..REQUESTS {
        let out = curl(&[format!("http://127.0.0.1:{}/health", server.http_port)]);
        assert!(out.status.success());
    }
    rt.block_on(receiver.wait_for_spans(REQUESTS as usize, SPAN_TIMEOUT));
    // Exported counts are updated when the collector has answered, and the kernel's counters
    // are read once per process scan: poll briefly until both have caught up.
    let deadline = Instant::now() + SPAN_TIMEOUT;
    let page = loop {
        let (code, page) = get("/metrics");
        assert_eq!(code, "200");
        let caught_up = metric(&page, "http_autoinstrument_spans_exported_total") >= REQUESTS
            && metric(
                &page,
                "http_autoinstrument_probe_hits_total{probe=\"entry\"}",
            ) >= REQUESTS;
        if caught_up || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(metric(&page, "http_autoinstrument_processes_traced"), 1);
    // The entry, every RET of ServeHTTP, and runtime.gopanic.
    assert!(
        metric(&page, "http_autoinstrument_probes_attached") >= 3,
        "{page}"
    );
    assert_eq!(
        metric(
            &page,
            "http_autoinstrument_probe_hits_total{probe=\"entry\"}"
        ),
        REQUESTS
    );
    assert_eq!(
        metric(&page, "http_autoinstrument_events_read_total"),
        REQUESTS
    );
    assert_eq!(
        metric(&page, "http_autoinstrument_kernel_events_lost_total"),
        0
    );
    assert_eq!(
        metric(&page, "http_autoinstrument_spans_built_total"),
        REQUESTS
    );
    assert_eq!(
        metric(&page, "http_autoinstrument_spans_exported_total"),
        REQUESTS
    );
    assert_eq!(metric(&page, "http_autoinstrument_spans_failed_total"), 0);
    assert_eq!(metric(&page, "http_autoinstrument_spans_queued"), 0);
    assert!(
        page.contains("# TYPE http_autoinstrument_export_retries counter"),
        "{page}"
    );
    assert!(
        page.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    let (code, _) = get("/nothing");
    assert_eq!(code, "404");
    agent.stop();
}

/// Every supported Go release installed here (CI installs the newest patch release of each
/// series, 1.21 through 1.27), built the three ways users build, traced by one agent selecting
/// them by executable: a request set over HTTP/1.1, HTTPS and HTTP/2 per server, every attribute
/// checked.
#[test]
fn every_release_and_build_is_traced() {
    if !require_root() {
        return;
    }
    let versions = go_fixtures_versions();
    if versions.is_empty() {
        return;
    }
    let variants = [
        (Variant::Default, "plain"),
        (Variant::Stripped, "stripped"),
        (Variant::CgoPieStripped, "cgo-pie-stripped"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut builds = Vec::new();
    for (version, minor) in &versions {
        for (variant, label) in variants {
            let name = format!("matrix-go{version}-{label}");
            let copy = dir.path().join(&name);
            std::fs::copy(build_go_server(version, variant), &copy).unwrap();
            builds.push((name, copy, *minor));
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let mut agent = Agent::start(
        &["--exe".into(), format!("{}/matrix-*", dir.path().display())],
        &otlp_env(&receiver, true),
    );
    let servers: Vec<(String, GoServer, u32)> = builds
        .iter()
        .map(|(name, binary, minor)| {
            let server = GoServer::start_with_env(binary, &[], &[("OTEL_SERVICE_NAME", name)]);
            (name.clone(), server, *minor)
        })
        .collect();
    for (_, server, _) in &servers {
        agent.wait_until_tracing(server.pid);
    }
    let mut expected = Vec::new();
    for (name, server, minor) in &servers {
        // Per protocol: a routed request with a query, and a server error.
        let scripted: Vec<Scripted> = script(server, *minor)
            .into_iter()
            .filter(|s| s.query.is_some() || s.path == "/status/503")
            .collect();
        assert_eq!(scripted.len(), 6);
        for s in &scripted {
            let out = curl(&s.args);
            assert!(out.status.success(), "{name}: curl {:?}", s.args);
        }
        expected.push((name, server, scripted));
    }
    let total: usize = expected.iter().map(|(_, _, s)| s.len()).sum();
    let spans = rt.block_on(receiver.wait_for_spans(total, Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(receiver.spans().len(), total);
    for (name, server, scripted) in &expected {
        let own: Vec<ReceivedSpan> = spans
            .iter()
            .filter(|s| s.resource_str("service.name") == Some(name.as_str()))
            .cloned()
            .collect();
        assert_eq!(own.len(), scripted.len(), "{name}");
        for s in scripted {
            check_span(find_span(&own, s), s, server, name);
        }
    }
    eprintln!(
        "{} servers ({} releases x {} builds), {total} spans checked",
        servers.len(),
        versions.len(),
        variants.len()
    );
    agent.stop();
}

/// A restarted service is traced from its first request: the probes stay attached to its
/// executable, so its new process needs no attach, nor even a scan (the agent scans every 5 s
/// here; each restart's first request is sent as soon as the service listens).
#[test]
fn a_restarted_service_is_traced_from_its_first_request() {
    let Some(newest) = root_and_newest_go() else {
        return;
    };
    let (dir, binary) = private_copy(&build_go_server(&newest, Variant::Stripped), "svc");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let mut agent = Agent::start(
        &[
            "--exe".into(),
            format!("{}/svc", dir.path().display()),
            "--scan-interval-ms".into(),
            "5000".into(),
        ],
        &otlp_env(&receiver, false),
    );
    let first = GoServer::start_with_env(&binary, &[], &[("OTEL_SERVICE_NAME", "restarted")]);
    agent.wait_until_tracing(first.pid);
    drop(first);
    const RESTARTS: usize = 10;
    // Each restart is killed once the next has started: the agent reads a process's environment
    // when it meets its first span, which a process killed at once would no longer have.
    let mut running: Option<GoServer> = None;
    let mut pids = Vec::new();
    for round in 0..RESTARTS {
        let server = GoServer::start_with_env(&binary, &[], &[("OTEL_SERVICE_NAME", "restarted")]);
        let started = Instant::now();
        let out = curl(&[format!(
            "http://127.0.0.1:{}/users/{round}",
            server.http_port
        )]);
        assert!(out.status.success());
        eprintln!(
            "restart {round}: first request answered {:?} after its start line",
            started.elapsed()
        );
        pids.push(server.pid);
        let _ = rt.block_on(receiver.wait_for_spans(round + 1, SPAN_TIMEOUT));
        running = Some(server);
    }
    drop(running);
    let spans = receiver.spans();
    assert_eq!(spans.len(), RESTARTS, "{spans:#?}");
    for (round, pid) in pids.iter().enumerate() {
        let span = spans
            .iter()
            .find(|s| s.attr_str("url.path") == Some(&format!("/users/{round}")))
            .unwrap_or_else(|| panic!("no span of restart {round}"));
        assert_eq!(span.resource_int("process.pid"), Some(i64::from(*pid)));
        assert_eq!(span.resource_str("service.name"), Some("restarted"));
        assert_eq!(span.attr_str("http.route"), Some("/users/{id}"));
        assert_eq!(span.attr_int("http.response.status_code"), Some(200));
    }
    agent.stop();
}

/// Forty replicas of one service restarted at once are all traced from their first request,
/// with the probes of one executable: probe links do not grow with the replicas.
#[test]
fn forty_replicas_restarted_at_once_are_traced_from_their_first_request() {
    let Some(newest) = root_and_newest_go() else {
        return;
    };
    const REPLICAS: usize = 40;
    let (dir, binary) = private_copy(&build_go_server(&newest, Variant::Stripped), "replica");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let mut agent = Agent::start(
        &[
            "--exe".into(),
            format!("{}/replica", dir.path().display()),
            "--metrics-address".into(),
            "127.0.0.1:0".into(),
        ],
        &otlp_env(&receiver, true),
    );
    let address = metrics_address(&mut agent);
    let start_all = || -> Vec<GoServer> {
        let threads: Vec<_> = (0..REPLICAS)
            .map(|_| {
                let binary = binary.clone();
                std::thread::spawn(move || GoServer::start(&binary))
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    };
    let links = |expected_processes: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let page = http_get(&address, "/metrics").1;
            let traced = metric(&page, "http_autoinstrument_processes_traced");
            if traced == expected_processes || Instant::now() > deadline {
                assert_eq!(traced, expected_processes, "{page}");
                assert_eq!(metric(&page, "http_autoinstrument_executables_attached"), 1);
                return metric(&page, "http_autoinstrument_probes_attached");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let first = GoServer::start(&binary);
    agent.wait_until_tracing(first.pid);
    let links_for_one = links(1);
    drop(first);

    let replicas = start_all();
    // One request each, sent as soon as every replica listens: before any scan has run for most.
    for server in &replicas {
        let out = curl(&[format!(
            "http://127.0.0.1:{}/users/{}",
            server.http_port, server.pid
        )]);
        assert!(out.status.success());
    }
    let first_round = rt.block_on(receiver.wait_for_spans(REPLICAS, SPAN_TIMEOUT));
    assert_eq!(
        links(REPLICAS as u64),
        links_for_one,
        "links grew with the replicas"
    );
    drop(replicas);

    let restarted = start_all();
    for server in &restarted {
        let out = curl(&[format!(
            "http://127.0.0.1:{}/users/{}",
            server.http_port, server.pid
        )]);
        assert!(out.status.success());
    }
    let spans = rt.block_on(receiver.wait_for_spans(2 * REPLICAS, SPAN_TIMEOUT));
    assert_eq!(first_round.len(), REPLICAS);
    assert_eq!(spans.len(), 2 * REPLICAS, "one span per replica and round");
    for server in restarted.iter() {
        let own: Vec<_> = spans
            .iter()
            .filter(|s| s.resource_int("process.pid") == Some(i64::from(server.pid)))
            .collect();
        assert_eq!(own.len(), 1, "pid {}", server.pid);
        assert_eq!(
            own[0].attr_str("url.path"),
            Some(format!("/users/{}", server.pid).as_str())
        );
        assert_eq!(own[0].resource_str("service.name"), Some("replica"));
    }
    assert_eq!(
        links(REPLICAS as u64),
        links_for_one,
        "links grew with the replicas"
    );
    agent.stop();
}

/// A real Go HTTP server as its authors release it: esbuild's `--serve` (a stripped build
/// without `.go.buildinfo`, pinned in scripts/setup.sh, installed from npm), over HTTP/1.1,
/// HTTPS and HTTP/2, every attribute checked.
#[test]
fn a_released_third_party_go_server_is_traced() {
    if !require_root() {
        return;
    }
    let esbuild = support::go_fixtures::tools_dir().join("esbuild-0.28.2/package/bin/esbuild");
    if !esbuild.is_file() {
        let message = format!(
            "{} is not installed: run scripts/setup.sh",
            esbuild.display()
        );
        skip(&message);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("index.html"), "<p>hello</p>\n").unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success());
    let free_port = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (http, https) = (free_port(), free_port());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let mut agent = Agent::start(
        &["--exe".into(), esbuild.display().to_string()],
        &otlp_env(&receiver, false),
    );
    agent.wait_for_log(&["agent running"], Duration::from_secs(20));
    // esbuild serves until its standard input closes.
    let serve = |port: u16, tls: bool| {
        let mut command = Command::new(&esbuild);
        command
            .arg(format!("--serve=127.0.0.1:{port}"))
            .arg(format!("--servedir={}", site.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if tls {
            command
                .arg(format!("--certfile={}", cert.display()))
                .arg(format!("--keyfile={}", key.display()));
        }
        command.spawn().expect("starting esbuild")
    };
    let mut servers = [serve(http, false), serve(https, true)];
    for server in &servers {
        agent.wait_until_tracing(server.id());
    }
    let requests = [
        (
            "http",
            http,
            "--http1.1",
            "1.1",
            "/index.html?v=1",
            200,
            Some("v=1"),
        ),
        ("https", https, "--http1.1", "1.1", "/", 200, None),
        ("https", https, "--http2", "2", "/missing.js", 404, None),
    ];
    for (scheme, port, flag, _, target, _, _) in requests {
        let url = format!("{scheme}://127.0.0.1:{port}{target}");
        let out = curl(&[flag.into(), "-A".into(), "e2e-esbuild".into(), url]);
        assert!(out.status.success());
    }
    let spans = rt.block_on(receiver.wait_for_spans(requests.len(), SPAN_TIMEOUT));
    assert_eq!(spans.len(), requests.len());
    for (scheme, port, _, protocol, target, status, query) in requests {
        let path = target.split('?').next().unwrap();
        let span = spans
            .iter()
            .find(|s| {
                s.attr_str("url.path") == Some(path) && s.attr_str("url.scheme") == Some(scheme)
            })
            .unwrap_or_else(|| panic!("no span for {target}: {spans:#?}"));
        let ctx = format!("{scheme} {protocol} {target}");
        assert_eq!(span.kind, SpanKind::Server, "{ctx}");
        assert_eq!(span.name, "GET", "{ctx}");
        assert_eq!(span.attr_str("http.request.method"), Some("GET"), "{ctx}");
        assert_eq!(span.attr_str("url.query"), query, "{ctx}");
        assert_eq!(
            span.attr_int("http.response.status_code"),
            Some(status),
            "{ctx}"
        );
        assert_eq!(
            span.attr_str("network.protocol.version"),
            Some(protocol),
            "{ctx}"
        );
        assert_eq!(span.attr_str("server.address"), Some("127.0.0.1"), "{ctx}");
        assert_eq!(span.attr_int("server.port"), Some(i64::from(port)), "{ctx}");
        assert_eq!(span.attr_str("client.address"), Some("127.0.0.1"), "{ctx}");
        assert!(span.attr_int("client.port").is_some_and(|p| p > 0), "{ctx}");
        assert_eq!(
            span.attr_str("user_agent.original"),
            Some("e2e-esbuild"),
            "{ctx}"
        );
        assert_eq!(span.attr_int("http.request.body.size"), Some(0), "{ctx}");
        assert!(
            span.attr_int("http.response.body.size")
                .is_some_and(|n| n > 0),
            "{ctx}"
        );
        assert!(!is_error(span), "{ctx}");
        assert_eq!(span.resource_str("service.name"), Some("esbuild"), "{ctx}");
        assert_eq!(
            span.resource_str("process.runtime.version"),
            Some("go1.26.5"),
            "{ctx}"
        );
    }
    agent.stop();
    for server in &mut servers {
        let _ = server.kill();
        let _ = server.wait();
    }
}

/// A plugin in each language the SDKs serve (Rust, Go, JavaScript, Python) in the agent's chain on
/// real traffic, with the spans built recorded (`--record-spans`); `plugin run` on the recording
/// then gives the same verdicts, plugin by plugin, as the agent did.
#[test]
fn plugins_in_every_language_run_in_the_agent_and_on_its_recorded_spans() {
    if !require_root() {
        return;
    }
    let plugins = [
        ("filter", "10-filter", ""),
        (
            "go-filter",
            "20-go-filter",
            "use_default_paths = false\nprefixes = [\"/debug/\"]\n",
        ),
        ("js-drop-bots", "30-bots", ""),
        (
            "py-slow-marker",
            "40-mark",
            "threshold_ms = 0\nattribute = \"app.seen-by-python\"\n",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let plugins_dir = dir.path().join("plugins");
    std::fs::create_dir(&plugins_dir).unwrap();
    for (built, name, settings) in plugins {
        let Some(wasm) = built_plugin(built) else {
            return;
        };
        std::fs::copy(wasm, plugins_dir.join(format!("{name}.wasm"))).unwrap();
        // The Python and JavaScript runtimes need more than the default 64 MiB.
        std::fs::write(
            plugins_dir.join(format!("{name}.toml")),
            format!("memory-limit-mib = 256\n[settings]\n{settings}"),
        )
        .unwrap();
    }
    let Some(newest) = root_and_newest_go() else {
        return;
    };
    let binary = build_go_server(&newest, Variant::Default);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let server = GoServer::start(&binary);
    let recording = dir.path().join("spans.jsonl");
    let mut agent = Agent::start(
        &[
            "--pid".into(),
            server.pid.to_string(),
            "--plugins".into(),
            plugins_dir.display().to_string(),
            "--record-spans".into(),
            recording.display().to_string(),
        ],
        &otlp_env(&receiver, true),
    );
    for (_, name, _) in plugins {
        // Compiling the Python and JavaScript components takes seconds on a small machine.
        agent.wait_for_log(
            &["plugin loaded", &format!("{name}.wasm")],
            Duration::from_secs(180),
        );
    }
    agent.wait_until_tracing(server.pid);
    let port = server.http_port;
    let requests: [(&str, &[&str]); 4] = [
        ("/health", &[]),
        ("/debug/vars", &[]),
        ("/", &["-A", "Mozilla/5.0 (compatible; Googlebot/2.1)"]),
        ("/users/7", &[]),
    ];
    for (path, extra) in requests {
        let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        args.push(format!("http://127.0.0.1:{port}{path}"));
        assert!(curl(&args).status.success(), "{path}");
    }
    rt.block_on(receiver.wait_for_spans(1, SPAN_TIMEOUT));
    let final_stats = agent.stop();

    // In the agent: three spans dropped, each by the plugin written for it; the fourth marked by
    // the Python plugin after passing the other three.
    let spans = receiver.spans();
    let paths: Vec<_> = spans.iter().map(|s| s.attr_str("url.path")).collect();
    assert_eq!(paths, [Some("/users/7")], "{final_stats}");
    assert!(
        matches!(
            spans[0].attributes.get("app.seen-by-python"),
            Some(support::otlp_receiver::Value::Bool(true))
        ),
        "{:?}",
        spans[0].attributes
    );

    // The recording: the four spans as built, before any plugin.
    let text = std::fs::read_to_string(&recording).unwrap();
    let recorded: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let recorded_paths: Vec<_> = recorded
        .iter()
        .map(|s| s["attributes"]["url.path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        recorded_paths,
        requests.map(|(path, _)| path.to_owned()),
        "{text}"
    );
    assert!(recorded
        .iter()
        .all(|s| s["attributes"].get("app.seen-by-python").is_none()));

    // `plugin run` on the recording, without root: the same verdicts.
    let out = Command::new(AGENT)
        .args(["plugin", "run", "--plugins"])
        .arg(&plugins_dir)
        .arg("--input")
        .arg(&recording)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<(String, String)> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| match (&v["kept"], &v["dropped"]) {
            (kept, serde_json::Value::Null) => {
                assert_eq!(kept["attributes"]["app.seen-by-python"], true, "{v}");
                (kept["attributes"]["url.path"].to_string(), "kept".into())
            }
            (_, dropped) => (
                dropped["attributes"]["url.path"].to_string(),
                v["plugin"].as_str().unwrap().to_owned(),
            ),
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("\"/health\"", "10-filter.wasm"),
            ("\"/debug/vars\"", "20-go-filter.wasm"),
            ("\"/\"", "30-bots.wasm"),
            ("\"/users/7\"", "kept"),
        ]
        .map(|(p, v)| (p.to_owned(), v.to_owned())),
        "{stdout}"
    );
}
