//! Connected traces, end to end, as root with real eBPF: fixture service A calls fixture service
//! B with net/http's client over HTTP, HTTPS and HTTP/2, with the request's context on the
//! handler's goroutine, from a goroutine the handler starts, with `context.Background()`, and to
//! a closed port; the spans at a real OTLP receiver say who called whom.
mod support;

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use support::agent::{curl, otlp_env, require_root, skip, Agent, SPAN_TIMEOUT};
use support::go_fixtures::{build_go_server, require_go, require_x_net, GoServer, Variant};
use support::otlp_receiver::{OtlpReceiver, ReceivedSpan};

/// The caller's trace context the tests send to A.
fn traceparent(case: u32, sampled: bool) -> (String, Vec<u8>, Vec<u8>) {
    let trace_id = format!("4bf92f3577b34da6a3ce929d0e0e{case:04x}");
    let span_id = format!("00f067aa0ba9{case:04x}");
    let value = format!("00-{trace_id}-{span_id}-0{}", u8::from(sampled));
    (value, hex(&trace_id), hex(&span_id))
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// One call A makes to B.
struct Call {
    case: u32,
    /// How A's handler makes it (see the fixture's `call`).
    mode: &'static str,
    h2: bool,
    url: String,
    protocol: &'static str,
    /// The call fails (a closed port).
    fails: bool,
    /// The call is made outside the request (a goroutine with context.Background()): a new trace.
    detached: bool,
}

struct Services {
    a: GoServer,
    b: GoServer,
    _dir: tempfile::TempDir,
}

/// A and B: copies of the fixture named apart, traced by executable.
fn start(
    go: &str,
    agent_env: &[(&'static str, String)],
    receiver: &OtlpReceiver,
) -> Option<(Services, Agent)> {
    if !require_root() {
        return None;
    }
    let toolchain = require_go(go)?;
    let binary = build_go_server(&toolchain.version, Variant::Stripped);
    let dir = tempfile::tempdir().unwrap();
    for name in ["svc-a", "svc-b"] {
        std::fs::copy(&binary, dir.path().join(name)).unwrap();
    }
    let args = [
        "--exe".to_string(),
        format!("{}/svc-*", dir.path().display()),
    ];
    let mut env = otlp_env(receiver, true);
    env.extend_from_slice(agent_env);
    let mut agent = Agent::start(&args, &env);
    let a = GoServer::start_with_env(
        &dir.path().join("svc-a"),
        &[],
        &[("OTEL_SERVICE_NAME", "svc-a")],
    );
    let b = GoServer::start_with_env(
        &dir.path().join("svc-b"),
        &[],
        &[("OTEL_SERVICE_NAME", "svc-b")],
    );
    agent.wait_until_tracing(a.pid);
    agent.wait_until_tracing(b.pid);
    Some((Services { a, b, _dir: dir }, agent))
}

fn calls(b: &GoServer, first_case: u32) -> Vec<Call> {
    let mut out = Vec::new();
    let mut case = first_case;
    for (scheme, port, h2, protocol) in [
        ("http", b.http_port, false, "1.1"),
        ("https", b.https_port, false, "1.1"),
        ("https", b.https_port, true, "2"),
    ] {
        for mode in ["ctx", "goroutine", "background"] {
            out.push(Call {
                case,
                mode,
                h2,
                url: format!("{scheme}://127.0.0.1:{port}/users/{case}"),
                protocol,
                fails: false,
                detached: false,
            });
            case += 1;
        }
    }
    out.push(Call {
        case,
        mode: "ctx",
        h2: false,
        url: format!("http://127.0.0.1:1/users/{case}"),
        protocol: "1.1",
        fails: true,
        detached: false,
    });
    out.push(Call {
        case: case + 1,
        mode: "detached",
        h2: false,
        url: format!("http://127.0.0.1:{}/users/{}", b.http_port, case + 1),
        protocol: "1.1",
        fails: false,
        detached: true,
    });
    out
}

/// Sends A the request that makes `call`, with the caller's `traceparent` when given.
fn send(a: &GoServer, call: &Call, traceparent: Option<&str>) {
    let mut args = vec![
        "-G".to_string(),
        format!("http://127.0.0.1:{}/call", a.http_port),
    ];
    for (k, v) in [
        ("case", call.case.to_string()),
        ("mode", call.mode.to_string()),
        ("proto", if call.h2 { "h2" } else { "h1" }.to_string()),
        ("url", call.url.clone()),
    ] {
        args.extend(["--data-urlencode".into(), format!("{k}={v}")]);
    }
    if let Some(tp) = traceparent {
        args.extend(["-H".into(), format!("traceparent: {tp}")]);
    }
    assert!(curl(&args).status.success());
}

fn service<'a>(spans: &'a [ReceivedSpan], name: &str) -> impl Iterator<Item = &'a ReceivedSpan> {
    let name = name.to_owned();
    spans
        .iter()
        .filter(move |s| s.resource_str("service.name") == Some(name.as_str()))
}

/// Checks A's server span, its one client span and B's server span for `call`.
/// A's one client span for `url`: a root when `detached` (a call outside the request), else the
/// child of A's `server` span in its trace.
fn one_client_span<'a>(
    spans: &'a [ReceivedSpan],
    url: &str,
    server: &ReceivedSpan,
    detached: bool,
    ctx: &str,
) -> &'a ReceivedSpan {
    let clients: Vec<&ReceivedSpan> = service(spans, "svc-a")
        .filter(|s| s.kind == SpanKind::Client && s.attr_str("url.full") == Some(url))
        .collect();
    assert_eq!(
        clients.len(),
        1,
        "{ctx}: exactly one client span: {clients:#?}"
    );
    let client = clients[0];
    if detached {
        assert_ne!(
            client.trace_id, server.trace_id,
            "{ctx}: a call outside the request"
        );
        assert!(client.parent_span_id.is_empty(), "{ctx}: a root");
    } else {
        assert_eq!(
            client.trace_id, server.trace_id,
            "{ctx}: the request's trace"
        );
        assert_eq!(
            client.parent_span_id, server.span_id,
            "{ctx}: child of A's server span"
        );
    }
    client
}

fn check(spans: &[ReceivedSpan], call: &Call, b: &GoServer, caller: Option<(&[u8], &[u8])>) {
    let ctx = format!(
        "case {} ({} {} {})",
        call.case, call.mode, call.protocol, call.url
    );
    let server = a_server_span(spans, call.case, &ctx);
    match caller {
        Some((trace_id, span_id)) => {
            assert_eq!(
                server.trace_id, trace_id,
                "{ctx}: A joins the caller's trace"
            );
            assert_eq!(
                server.parent_span_id, span_id,
                "{ctx}: A's parent is the caller"
            );
        }
        None => assert!(server.parent_span_id.is_empty(), "{ctx}: A is a root"),
    }
    let client = one_client_span(spans, &call.url, server, call.detached, &ctx);
    assert_eq!(client.name, "GET", "{ctx}");
    assert_eq!(client.attr_str("http.request.method"), Some("GET"), "{ctx}");
    assert_eq!(
        client.attr_str("server.address"),
        Some("127.0.0.1"),
        "{ctx}"
    );
    let port: i64 = call
        .url
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(client.attr_int("server.port"), Some(port), "{ctx}");
    assert!(client.start_unix_nanos >= server.start_unix_nanos, "{ctx}");
    assert!(client.end_unix_nanos <= server.end_unix_nanos, "{ctx}");
    if call.fails {
        assert_eq!(client.status_code, StatusCode::Error, "{ctx}");
        assert_eq!(client.attr_str("error.type"), Some("*net.OpError"), "{ctx}");
        assert_eq!(client.attr_int("http.response.status_code"), None, "{ctx}");
        return;
    }
    answered_by_b(spans, client, call.case, call.protocol, b, &ctx);
}

/// A's server span of the request for case `case`.
fn a_server_span<'a>(spans: &'a [ReceivedSpan], case: u32, ctx: &str) -> &'a ReceivedSpan {
    service(spans, "svc-a")
        .find(|s| {
            s.kind == SpanKind::Server
                && s.attr_str("url.query")
                    .is_some_and(|q| q.starts_with(&format!("case={case}&")))
        })
        .unwrap_or_else(|| panic!("{ctx}: no server span of A in {spans:#?}"))
}

/// The call `client` of case `case` succeeded over `protocol`, and B's process served it: B's
/// server span.
fn answered_by_b<'a>(
    spans: &'a [ReceivedSpan],
    client: &ReceivedSpan,
    case: u32,
    protocol: &str,
    b: &GoServer,
    ctx: &str,
) -> &'a ReceivedSpan {
    assert_ne!(client.status_code, StatusCode::Error, "{ctx}");
    assert_eq!(client.attr_str("error.type"), None, "{ctx}");
    assert_eq!(
        client.attr_int("http.response.status_code"),
        Some(200),
        "{ctx}"
    );
    assert_eq!(
        client.attr_str("network.protocol.version"),
        Some(protocol),
        "{ctx}"
    );
    let path = format!("/users/{case}");
    let b_span = service(spans, "svc-b")
        .find(|s| s.attr_str("url.path") == Some(path.as_str()))
        .unwrap_or_else(|| panic!("{ctx}: no server span of B"));
    assert_eq!(
        b_span.resource_int("process.pid"),
        Some(i64::from(b.pid)),
        "{ctx}"
    );
    b_span
}

fn a_calls_b(go: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let Some((services, agent)) = start(go, &[], &receiver) else {
        return;
    };
    let (a, b) = (&services.a, &services.b);
    let without = calls(b, 100);
    let with = calls(b, 200);
    for call in &without {
        send(a, call, None);
    }
    for call in &with {
        send(a, call, Some(&traceparent(call.case, true).0));
    }
    // Per call: A's server span and its client span; B's server span unless the call failed.
    let expected: usize = (without.iter().chain(&with))
        .map(|c| if c.fails { 2 } else { 3 })
        .sum();
    rt.block_on(receiver.wait_for_spans(expected, SPAN_TIMEOUT));
    std::thread::sleep(Duration::from_millis(1500));
    let spans = receiver.spans();
    assert_eq!(spans.len(), expected, "{spans:#?}");
    for call in &without {
        check(&spans, call, b, None);
    }
    for call in &with {
        let (_, trace_id, span_id) = traceparent(call.case, true);
        check(&spans, call, b, Some((&trace_id, &span_id)));
    }
    let stats = agent.stop();
    eprintln!("go{go}: {stats}");
    // One hit at each call's start and one at its return, including calls on goroutines whose
    // stack Go grows on entry; every server request ends where it began.
    let calls = (without.len() + with.len()) as u64;
    assert_eq!(stat(&stats, "client_call_hits"), 2 * calls, "{stats}");
    assert_eq!(stat(&stats, "ends_without_entry"), 0, "{stats}");
}

#[test]
fn go_1_21_a_calls_b() {
    a_calls_b("1.21");
}

#[test]
fn go_1_24_a_calls_b() {
    a_calls_b("1.24");
}

#[test]
fn newest_go_a_calls_b() {
    let Some(newest) = support::go_fixtures::newest() else {
        skip("no Go toolchain installed: run scripts/setup.sh");
        return;
    };
    a_calls_b(&newest.version);
}

/// `parentbased_traceidratio` at 0.5: each trace is kept or dropped whole (A's server span with
/// its client span), about half of them; a caller's decision is followed.
#[test]
fn sampling_keeps_or_drops_a_trace_whole() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let Some(newest) = support::go_fixtures::newest() else {
        skip("no Go toolchain installed: run scripts/setup.sh");
        return;
    };
    let sampler = [
        (
            "OTEL_TRACES_SAMPLER",
            "parentbased_traceidratio".to_string(),
        ),
        ("OTEL_TRACES_SAMPLER_ARG", "0.5".to_string()),
    ];
    let Some((services, agent)) = start(&newest.version, &sampler, &receiver) else {
        return;
    };
    let (a, b) = (&services.a, &services.b);
    const ROOTS: u32 = 80;
    let health_call = |case| Call {
        case,
        mode: "ctx",
        h2: false,
        url: format!("http://127.0.0.1:{}/health", b.http_port),
        protocol: "1.1",
        fails: false,
        detached: false,
    };
    for case in 0..ROOTS {
        send(a, &health_call(1000 + case), None);
    }
    // A caller's decision wins: sampled in, sampled out.
    for (case, sampled) in [(2000, true), (2001, false)] {
        send(a, &health_call(case), Some(&traceparent(case, sampled).0));
    }
    std::thread::sleep(Duration::from_secs(3));
    let spans = receiver.spans();
    let a_spans: Vec<&ReceivedSpan> = service(&spans, "svc-a").collect();
    let servers: std::collections::HashSet<&Vec<u8>> = (a_spans.iter())
        .filter(|s| s.kind == SpanKind::Server)
        .map(|s| &s.trace_id)
        .collect();
    let clients: std::collections::HashSet<&Vec<u8>> = (a_spans.iter())
        .filter(|s| s.kind == SpanKind::Client)
        .map(|s| &s.trace_id)
        .collect();
    assert_eq!(servers, clients, "every kept trace keeps both spans of A");
    let (_, kept, _) = traceparent(2000, true);
    let (_, dropped, _) = traceparent(2001, false);
    assert!(servers.contains(&kept) && !servers.contains(&dropped));
    let roots = servers.len() - 1;
    eprintln!("sampling at 0.5: {roots} of {ROOTS} traces kept");
    assert!((16..=64).contains(&roots), "{roots} of {ROOTS} kept at 0.5");
    let stats = agent.stop();
    assert!(stats.contains("spans_not_sampled="), "{stats}");
}

/// What B received from one call A made, and the spans of it.
struct Propagated {
    /// `Traceparent` lines of the request B received (B echoes its headers, A relays them).
    received: Vec<String>,
    client: ReceivedSpan,
    b_span: ReceivedSpan,
}

/// A calls B's `/headers` for `case` with `url_base` (over HTTP/2 when `h2`, and with the
/// application's own `traceparent` when given); returns what B received and the client span and
/// B's span.
fn call_headers(
    a: &GoServer,
    (url_base, h2): (&str, bool),
    case: u32,
    app_traceparent: Option<&str>,
    spans: &dyn Fn(usize) -> Vec<ReceivedSpan>,
) -> Propagated {
    let url = format!("{url_base}/headers?case={case}");
    let mut args = vec![
        "-sS".to_string(),
        "-G".into(),
        format!("http://127.0.0.1:{}/call", a.http_port),
        "--data-urlencode".into(),
        format!("url={url}"),
    ];
    if let Some(tp) = app_traceparent {
        args.extend(["--data-urlencode".into(), format!("traceparent={tp}")]);
    }
    if h2 {
        args.extend(["--data-urlencode".into(), "proto=h2".into()]);
    }
    let out = std::process::Command::new("curl")
        .args(&args)
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(body.starts_with("called: 200"), "case {case}: {body}");
    let received = body
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("traceparent:"))
        .map(|l| l.split_once(':').unwrap().1.trim().to_owned())
        .collect();
    let query = format!("case={case}");
    let deadline = std::time::Instant::now() + SPAN_TIMEOUT;
    loop {
        let all = spans(0);
        let client = all
            .iter()
            .find(|s| s.kind == SpanKind::Client && s.attr_str("url.full") == Some(url.as_str()));
        let b_span = all.iter().find(|s| {
            s.resource_str("service.name") == Some("svc-b")
                && s.attr_str("url.query") == Some(query.as_str())
        });
        if let (Some(client), Some(b_span)) = (client, b_span) {
            return Propagated {
                received,
                client: client.clone(),
                b_span: b_span.clone(),
            };
        }
        assert!(
            std::time::Instant::now() < deadline,
            "case {case}: spans missing in {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hex_text(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Propagation into B, HTTP/1.1, HTTPS and HTTP/2: on where the kernel lets BPF programs write into
/// processes (B's span is the child of A's client span, and B received exactly that context, once),
/// off with a log line where it does not or when switched off (B's span a new root, B received
/// no header from the agent). Either way the application's own `traceparent` reaches B untouched
/// and is B's parent.
fn propagation(switch: Option<&'static str>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    let env: Vec<(&'static str, String)> = switch
        .map(|s| vec![("HTTP_AUTOINSTRUMENT_PROPAGATION", s.to_owned())])
        .unwrap_or_default();
    let Some((services, agent)) = start("1.24", &env, &receiver) else {
        return;
    };
    let log = agent.log_text();
    let on = log.contains("trace context propagation on");
    if switch == Some("off") {
        assert!(
            log.contains("propagation off (switched off by the configuration)"),
            "{log}"
        );
    } else if !on {
        assert!(
            log.contains("trace context propagation off (the kernel"),
            "{log}"
        );
        eprintln!("propagation is off on this kernel; checking that nothing is written");
    }
    let (a, b) = (&services.a, &services.b);
    let spans = |_| receiver.spans();
    let bases = [
        (format!("http://127.0.0.1:{}", b.http_port), false),
        (format!("https://127.0.0.1:{}", b.https_port), false),
        (format!("https://127.0.0.1:{}", b.https_port), true),
    ];
    for (i, (base, h2)) in bases.iter().enumerate() {
        let base = (base.as_str(), *h2);
        let case = 10 + i as u32;
        let p = call_headers(a, base, case, None, &spans);
        let version = if *h2 { "2" } else { "1.1" };
        assert_eq!(
            p.client.attr_str("network.protocol.version"),
            Some(version),
            "case {case}"
        );
        if on {
            let expected = format!(
                "00-{}-{}-01",
                hex_text(&p.client.trace_id),
                hex_text(&p.client.span_id)
            );
            assert_eq!(
                p.received,
                vec![expected],
                "case {case}: one header, the client span's"
            );
            assert_eq!(p.b_span.trace_id, p.client.trace_id, "case {case}");
            assert_eq!(p.b_span.parent_span_id, p.client.span_id, "case {case}");
        } else {
            assert!(
                p.received.is_empty(),
                "case {case}: nothing written: {:?}",
                p.received
            );
            assert!(
                p.b_span.parent_span_id.is_empty(),
                "case {case}: B starts a trace"
            );
            assert_ne!(p.b_span.trace_id, p.client.trace_id, "case {case}");
        }
        // The application's own value (as an SDK sets it) is never replaced nor doubled.
        let (own, trace_id, span_id) = traceparent(20 + i as u32, true);
        let p = call_headers(a, base, 20 + i as u32, Some(&own), &spans);
        assert_eq!(p.received, vec![own.clone()], "case {}", 20 + i);
        assert_eq!(p.b_span.trace_id, trace_id, "case {}", 20 + i);
        assert_eq!(p.b_span.parent_span_id, span_id, "case {}", 20 + i);
    }
    let stats = agent.stop();
    eprintln!("propagation {switch:?}: {stats}");
}

#[test]
fn propagation_where_the_kernel_allows_it() {
    propagation(Some("on"));
}

#[test]
fn propagation_switched_off() {
    propagation(Some("off"));
}

/// One call A makes with golang.org/x/net/http2's Transport (the x/net fixture's `/call`).
struct XNetCall {
    case: u32,
    /// `h2c` and `h2`: x/net's Transport as the http.Client's; `configure`: net/http's Transport
    /// set up with `http2.ConfigureTransport`, which calls into x/net's.
    via: &'static str,
    url: String,
    /// What `url.full` must say: no user information, the default query redaction.
    full: String,
    fails: bool,
    /// Made on a goroutine with `context.Background()`: a root.
    detached: bool,
}

fn x_net_calls(b: &GoServer) -> Vec<XNetCall> {
    let mut out = Vec::new();
    let mut add = |case: u32, via, base: String, fails, detached| {
        let rest = format!("/users/{case}?sig=s3cret&page=2");
        let (scheme, host) = base.split_once("://").unwrap();
        out.push(XNetCall {
            case,
            via,
            // Credentials in the URL (Go sends them as Authorization) never reach the span.
            url: format!("{scheme}://user:pa55@{host}{rest}"),
            full: format!("{base}{}", rest.replace("s3cret", "REDACTED")),
            fails,
            detached,
        });
    };
    let h2c = format!("http://127.0.0.1:{}", b.http_port);
    let h2 = format!("https://127.0.0.1:{}", b.https_port);
    // Two calls each: the first dials, the second reuses the connection (net/http's roundTrip
    // reaches x/net's Transport by another path then).
    for (first, via, base) in [
        (300, "h2c", &h2c),
        (310, "h2", &h2),
        (320, "configure", &h2),
    ] {
        for case in first..first + 2 {
            add(case, via, base.clone(), false, false);
        }
    }
    add(330, "h2c", "http://127.0.0.1:1".into(), true, false);
    add(331, "h2", "https://127.0.0.1:1".into(), true, false);
    add(340, "h2c", h2c, false, true);
    out
}

fn send_x_net(a: &GoServer, call: &XNetCall) {
    let mut args = vec![
        "-sS".to_string(),
        "-G".into(),
        format!("http://127.0.0.1:{}/call", a.http_port),
    ];
    for (k, v) in [
        ("case", call.case.to_string()),
        ("via", call.via.to_string()),
        ("url", call.url.clone()),
    ] {
        args.extend(["--data-urlencode".into(), format!("{k}={v}")]);
    }
    if call.detached {
        args.extend(["--data-urlencode".into(), "mode=detached".into()]);
    }
    let out = std::process::Command::new("curl")
        .args(&args)
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    let expected = if call.fails {
        "call failed"
    } else {
        "called: 200 HTTP/2.0"
    };
    assert!(body.starts_with(expected), "case {}: {body}", call.case);
}

fn check_x_net(spans: &[ReceivedSpan], call: &XNetCall, b: &GoServer) {
    let ctx = format!("case {} ({} {})", call.case, call.via, call.url);
    let server = a_server_span(spans, call.case, &ctx);
    let client = one_client_span(spans, &call.full, server, call.detached, &ctx);
    if !call.detached {
        assert!(client.start_unix_nanos >= server.start_unix_nanos, "{ctx}");
        assert!(client.end_unix_nanos <= server.end_unix_nanos, "{ctx}");
    }
    assert_eq!(client.name, "GET", "{ctx}");
    assert_eq!(client.attr_str("http.request.method"), Some("GET"), "{ctx}");
    let host = call.full.split_once("://").unwrap().1;
    let (address, port) = host.split('/').next().unwrap().split_once(':').unwrap();
    assert_eq!(client.attr_str("server.address"), Some(address), "{ctx}");
    assert_eq!(
        client.attr_int("server.port"),
        Some(port.parse().unwrap()),
        "{ctx}"
    );
    if call.fails {
        assert_eq!(client.status_code, StatusCode::Error, "{ctx}");
        assert_eq!(client.attr_str("error.type"), Some("*net.OpError"), "{ctx}");
        assert_eq!(client.attr_int("http.response.status_code"), None, "{ctx}");
        assert_eq!(client.attr_str("network.protocol.version"), None, "{ctx}");
        return;
    }
    let b_span = answered_by_b(spans, client, call.case, "2", b, &ctx);
    assert_eq!(
        b_span.attr_str("network.protocol.version"),
        Some("2"),
        "{ctx}"
    );
}

/// A value of the agent's final stats line.
fn stat(stats: &str, name: &str) -> u64 {
    let prefix = format!("{name}=");
    stats
        .split_whitespace()
        .find_map(|field| field.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {stats}"))
        .parse()
        .unwrap()
}

/// A (built with `go`) calls B with golang.org/x/net/http2's Transport: as an http.Client's
/// Transport over h2c and TLS, and under net/http's Transport set up with
/// `http2.ConfigureTransport`. B is built with the newest Go, whose net/http serves h2c.
fn a_calls_b_with_x_net(go: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(OtlpReceiver::start());
    if !require_root() {
        return;
    }
    let (Some(toolchain), Some(newest)) = (require_go(go), require_go("newest")) else {
        return;
    };
    if !require_x_net() {
        return;
    }
    assert!(
        newest.at_least(1, 24),
        "B must be built with Go >= 1.24 to serve h2c"
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, version) in [("svc-a", &toolchain.version), ("svc-b", &newest.version)] {
        let binary = build_go_server(version, Variant::XNetStripped);
        std::fs::copy(&binary, dir.path().join(name)).unwrap();
    }
    let args = [
        "--exe".to_string(),
        format!("{}/svc-*", dir.path().display()),
    ];
    let mut agent = Agent::start(&args, &otlp_env(&receiver, true));
    let start = |name| {
        GoServer::start_with_env(&dir.path().join(name), &[], &[("OTEL_SERVICE_NAME", name)])
    };
    let (a, b) = (start("svc-a"), start("svc-b"));
    agent.wait_until_tracing(a.pid);
    agent.wait_until_tracing(b.pid);
    let calls = x_net_calls(&b);
    for call in &calls {
        send_x_net(&a, call);
    }
    let expected: usize = calls.iter().map(|c| if c.fails { 2 } else { 3 }).sum();
    rt.block_on(receiver.wait_for_spans(expected, SPAN_TIMEOUT));
    std::thread::sleep(Duration::from_millis(1500));
    let spans = receiver.spans();
    assert_eq!(spans.len(), expected, "{spans:#?}");
    for call in &calls {
        check_x_net(&spans, call, &b);
    }
    let stats = agent.stop();
    eprintln!("go{go} with x/net: {stats}");
    // Two hits per call (start and return), and two more where net/http's roundTrip hands a
    // new connection's first request to x/net's Transport (the one `configure` call that dials).
    let hits = stat(&stats, "client_call_hits");
    let calls = calls.len() as u64;
    assert_eq!(hits, 2 * calls + 2, "client probe hits for {calls} calls");
    // x/net's return inside net/http's call is not taken for net/http's, which would then end
    // without its start.
    assert_eq!(stat(&stats, "ends_without_entry"), 0, "{stats}");
}

#[test]
fn go_1_21_a_calls_b_with_x_net() {
    a_calls_b_with_x_net("1.21");
}

#[test]
fn go_1_24_a_calls_b_with_x_net() {
    a_calls_b_with_x_net("1.24");
}

#[test]
fn newest_go_a_calls_b_with_x_net() {
    a_calls_b_with_x_net("newest");
}
