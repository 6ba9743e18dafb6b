//! The export module against a real OTLP receiver (gRPC and http/protobuf on localhost).

#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_autoinstrument::export::{
    format_span_line, Compression, ConfigError, ExportConfig, ExportLimits, ExportStats, Exporter,
    OtlpConfig, Protocol, DEFAULT_TIMEOUT, SCOPE_NAME,
};
use http_autoinstrument::span::{Attribute, AttributeValue, Resource, Span, SpanKind, SpanStatus};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind as OtlpKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatus;
use otlp_receiver::{OtlpReceiver, ReceivedSpan, Reject, Transport, Value};
use tokio::io::AsyncReadExt;

const WAIT: Duration = Duration::from_secs(10);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("http_autoinstrument=debug")
        .try_init();
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn otlp(pairs: &[(&str, &str)]) -> OtlpConfig {
    match ExportConfig::from_env_map(&env(pairs)).unwrap() {
        ExportConfig::Otlp(config) => config,
        ExportConfig::Stdout => panic!("expected an OTLP configuration from {pairs:?}"),
    }
}

fn resource(service: &str, pid: i64) -> Arc<Resource> {
    Arc::new(Resource {
        attributes: vec![
            Attribute::new("service.name", service.to_owned()),
            Attribute::new("process.pid", pid),
            Attribute::new("host.name", "test-host"),
        ],
    })
}

/// A span with a distinct id derived from `n`.
fn span(resource: &Arc<Resource>, n: u64, name: &str) -> Span {
    let mut span_id = [0u8; 8];
    span_id.copy_from_slice(&(n + 1).to_be_bytes());
    let start = 1_795_600_800_000_000_000 + n * 1_000;
    Span {
        trace_id: [0x4b; 16],
        span_id,
        parent_span_id: None,
        name: name.to_owned().into(),
        kind: SpanKind::Server,
        start_unix_nanos: start,
        end_unix_nanos: start + 1_234_567,
        status: SpanStatus::Unset,
        attributes: vec![
            Attribute::new("http.request.method", "GET"),
            Attribute::new("url.path", format!("/users/{n}")),
            Attribute::new("http.response.status_code", 200),
        ],
        resource: resource.clone(),
    }
}

fn spans(resource: &Arc<Resource>, count: u64, name: &str) -> Vec<Span> {
    (0..count).map(|n| span(resource, n, name)).collect()
}

/// Short delays so failure paths finish quickly.
fn fast_limits() -> ExportLimits {
    ExportLimits {
        queue_capacity: 1000,
        max_batch_size: 100,
        max_batch_delay: Duration::from_millis(10),
        max_export_attempts: 3,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        max_retry_time: Duration::from_secs(5),
        shutdown_timeout: Duration::from_secs(5),
    }
}

async fn wait_for_stats(
    exporter: &Exporter,
    what: &str,
    done: impl Fn(&ExportStats) -> bool,
) -> ExportStats {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = exporter.stats();
        if done(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn assert_accounted(stats: &ExportStats) {
    assert_eq!(
        stats.submitted,
        stats.exported + stats.dropped + stats.failed + stats.queued,
        "every submitted span is exported, dropped, failed or queued: {stats:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Round trips

/// Five spans covering every field, over two resources, submitted in one call.
fn rich_spans() -> (Vec<Span>, Arc<Resource>, Arc<Resource>) {
    let shop = resource("shop", 4242);
    let auth = resource("auth", 7);
    let mut server = span(&shop, 0, "GET /users/{id}");
    server.parent_span_id = Some([0x11; 8]);
    server.status = SpanStatus::Error {
        description: "upstream said no".into(),
    };
    server.attributes.extend([
        Attribute::new("http.route", "/users/{id}"),
        Attribute::new("user_agent.original", "curl/8.5.0 (x86_64)"),
        Attribute::new(
            "http.server.request.duration_ratio",
            AttributeValue::Float(0.25),
        ),
        Attribute::new("network.peer.is_local", true),
        Attribute::new("server.port", 8080),
    ]);
    let mut client = span(&shop, 1, "GET");
    client.kind = SpanKind::Client;
    client.parent_span_id = Some(server.span_id);
    client.status = SpanStatus::Ok;
    client.attributes = vec![
        Attribute::new("server.address", "auth.internal"),
        Attribute::new("http.response.status_code", 204),
    ];
    let plain = span(&shop, 2, "POST /orders");
    let auth_a = span(&auth, 3, "GET /token");
    let auth_b = span(&auth, 4, "DELETE /token");
    (vec![server, auth_a, client, plain, auth_b], shop, auth)
}

async fn round_trip(receiver: &OtlpReceiver, config: OtlpConfig, transport: Transport) {
    init_logs();
    let exporter = Exporter::start(ExportConfig::Otlp(config), fast_limits()).unwrap();
    let (sent, _, _) = rich_spans();
    exporter.submit(sent.clone());
    let received = receiver.wait_for_spans(sent.len(), WAIT).await;
    let stats = exporter.shutdown().await;
    assert_eq!(
        stats,
        ExportStats {
            submitted: 5,
            exported: 5,
            ..ExportStats::default()
        }
    );
    assert_eq!(received.len(), 5, "no duplicates: {received:#?}");

    let by_id: HashMap<Vec<u8>, &ReceivedSpan> =
        received.iter().map(|s| (s.span_id.clone(), s)).collect();
    for sent in &sent {
        let got = by_id
            .get(sent.span_id.as_slice())
            .unwrap_or_else(|| panic!("span {:?} missing", sent.name));
        assert_eq!(got.transport, transport);
        assert_eq!(got.name, sent.name);
        assert_eq!(got.trace_id, sent.trace_id.to_vec());
        assert_eq!(
            got.parent_span_id,
            sent.parent_span_id.map(|p| p.to_vec()).unwrap_or_default()
        );
        assert_eq!(
            got.kind,
            match sent.kind {
                SpanKind::Server => OtlpKind::Server,
                SpanKind::Client => OtlpKind::Client,
            }
        );
        assert_eq!(got.start_unix_nanos, sent.start_unix_nanos);
        assert_eq!(got.end_unix_nanos, sent.end_unix_nanos);
        match &sent.status {
            SpanStatus::Unset => assert_eq!(got.status_code, OtlpStatus::Unset),
            SpanStatus::Ok => assert_eq!(got.status_code, OtlpStatus::Ok),
            SpanStatus::Error { description } => {
                assert_eq!(got.status_code, OtlpStatus::Error);
                assert_eq!(&got.status_message, description);
            }
        }
        assert_eq!(got.attributes.len(), sent.attributes.len(), "{got:#?}");
        for attribute in &sent.attributes {
            let expected = match &attribute.value {
                AttributeValue::Str(s) => Value::Str(s.to_string()),
                AttributeValue::Int(i) => Value::Int(*i),
                AttributeValue::Float(x) => Value::Double(*x),
                AttributeValue::Bool(b) => Value::Bool(*b),
            };
            assert_eq!(
                got.attributes.get(attribute.key.as_ref()),
                Some(&expected),
                "{}",
                attribute.key
            );
        }
        assert_eq!(got.resource.len(), sent.resource.attributes.len());
        assert_eq!(
            got.resource_str("service.name"),
            Some(sent.resource.service_name())
        );
        assert_eq!(got.resource_str("host.name"), Some("test-host"));
        assert_eq!(got.scope_name, SCOPE_NAME);
        assert_eq!(got.scope_version, env!("CARGO_PKG_VERSION"));
    }
    let server = by_id[&vec![0, 0, 0, 0, 0, 0, 0, 1]];
    assert_eq!(
        server.attr_str("user_agent.original"),
        Some("curl/8.5.0 (x86_64)")
    );
    assert_eq!(server.attr_int("server.port"), Some(8080));
    assert_eq!(server.resource_int("process.pid"), Some(4242));

    // Two resources -> two ResourceSpans, each holding only its own spans.
    let mut index_of: HashMap<&str, usize> = HashMap::new();
    for got in &received {
        let service = got.resource_str("service.name").unwrap();
        let index = *index_of.entry(service).or_insert(got.resource_spans_index);
        assert_eq!(
            index, got.resource_spans_index,
            "{service} split over ResourceSpans"
        );
    }
    assert_eq!(index_of.len(), 2);
    assert_ne!(index_of["shop"], index_of["auth"]);
}

#[tokio::test]
async fn spans_reach_the_collector_intact_over_grpc_with_headers() {
    let receiver = OtlpReceiver::start().await;
    let config = otlp(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "X-Api-Key=s3cret%20value,tenant=a%3Db",
        ),
    ]);
    assert_eq!(config.protocol, Protocol::Grpc);
    round_trip(&receiver, config, Transport::Grpc).await;
    let headers = receiver.headers_seen();
    assert!(!headers.is_empty());
    for h in headers {
        assert_eq!(h.get("x-api-key").map(String::as_str), Some("s3cret value"));
        assert_eq!(h.get("tenant").map(String::as_str), Some("a=b"));
    }
}

#[tokio::test]
async fn spans_reach_the_collector_intact_over_http_protobuf_with_headers() {
    let receiver = OtlpReceiver::start().await;
    // Default protocol, generic endpoint: the exporter must append /v1/traces itself (the
    // receiver answers 404 anywhere else).
    let config = otlp(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "tenant=generic"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "authorization=Bearer%20abc,tenant=traces",
        ),
    ]);
    assert_eq!(config.protocol, Protocol::HttpProtobuf);
    round_trip(&receiver, config, Transport::Http).await;
    let headers = receiver.headers_seen();
    assert!(!headers.is_empty());
    for h in headers {
        assert_eq!(
            h.get("authorization").map(String::as_str),
            Some("Bearer abc")
        );
        assert_eq!(h.get("tenant").map(String::as_str), Some("traces"));
        assert_eq!(
            h.get("content-type").map(String::as_str),
            Some("application/x-protobuf")
        );
    }
}

/// `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` compresses what each transport sends, and the spans
/// arrive as sent.
#[tokio::test]
async fn gzip_compression_over_both_transports() {
    for (protocol, transport, encoding_header) in [
        ("grpc", Transport::Grpc, "grpc-encoding"),
        ("http/protobuf", Transport::Http, "content-encoding"),
    ] {
        let receiver = OtlpReceiver::start().await;
        let endpoint = match transport {
            Transport::Grpc => receiver.grpc_endpoint(),
            Transport::Http => receiver.http_endpoint(),
        };
        let config = otlp(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ]);
        assert_eq!(config.compression, Compression::Gzip);
        round_trip(&receiver, config, transport).await;
        for h in receiver.headers_seen() {
            assert_eq!(
                h.get(encoding_header).map(String::as_str),
                Some("gzip"),
                "{protocol}: {h:?}"
            );
        }
    }
}

#[test]
fn compression_is_gzip_or_none_and_the_traces_variable_wins() {
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318");
    assert_eq!(otlp(&[endpoint]).compression, Compression::None);
    assert_eq!(
        otlp(&[endpoint, ("OTEL_EXPORTER_OTLP_COMPRESSION", "none")]).compression,
        Compression::None
    );
    assert_eq!(
        otlp(&[
            endpoint,
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
        ])
        .compression,
        Compression::None
    );
    let e = ExportConfig::from_env_map(&env(&[endpoint, ("OTEL_EXPORTER_OTLP_COMPRESSION", "br")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("OTEL_EXPORTER_OTLP_COMPRESSION=\"br\"") && e.contains("\"gzip\" or \"none\""),
        "{e}"
    );
}

#[tokio::test]
async fn traces_endpoint_alias_is_used_verbatim() {
    init_logs();
    let receiver = OtlpReceiver::start().await;
    let endpoint = format!("{}/v1/traces", receiver.http_endpoint());
    let config = otlp(&[("OTEL_TRACES_ENDPOINT", &endpoint)]);
    assert_eq!(config.endpoint, endpoint);
    let exporter = Exporter::start(ExportConfig::Otlp(config), fast_limits()).unwrap();
    exporter.submit(spans(&resource("alias", 1), 3, "GET /alias"));
    let received = receiver.wait_for_spans(3, WAIT).await;
    assert!(received.iter().all(|s| s.name == "GET /alias"));
    assert_eq!(exporter.shutdown().await.exported, 3);
}

// ---------------------------------------------------------------------------------------------
// Failures

/// Collector down: `submit` stays instant, the queue bound holds, overflow is counted as
/// dropped, queued spans fail after bounded retries, and once the collector is back new spans
/// arrive over the same exporter.
async fn collector_down_then_up(protocol: &str) {
    init_logs();
    let receiver = OtlpReceiver::start().await;
    let endpoint = match protocol {
        "grpc" => receiver.grpc_endpoint(),
        _ => receiver.http_endpoint(),
    };
    receiver.stop().await;
    let limits = fast_limits();
    let config = otlp(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
    ]);
    let exporter = Exporter::start(ExportConfig::Otlp(config), limits).unwrap();

    let shop = resource("shop", 1);
    let batches: Vec<Vec<Span>> = (0..10_000).map(|n| vec![span(&shop, n, "down")]).collect();
    let mut max_queued = 0;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for (i, batch) in batches.into_iter().enumerate() {
        let t = Instant::now();
        exporter.submit(batch);
        slowest = slowest.max(t.elapsed());
        if i % 100 == 0 {
            max_queued = max_queued.max(exporter.stats().queued);
        }
    }
    let total = started.elapsed();
    eprintln!(
        "{protocol}: 10000 submits with the collector down took {total:?} (slowest {slowest:?})"
    );
    // A sanity bound far above the real cost (microseconds): submit must not wait on I/O.
    assert!(
        total < Duration::from_millis(250),
        "10k submits took {total:?}"
    );

    let stats = exporter.stats();
    assert_eq!(stats.submitted, 10_000);
    assert_eq!(stats.exported, 0);
    assert!(
        max_queued <= limits.queue_capacity as u64 && stats.queued <= limits.queue_capacity as u64
    );
    assert!(
        stats.dropped >= 10_000 - limits.queue_capacity as u64 - stats.failed,
        "{stats:?}"
    );
    assert_accounted(&stats);

    // Everything accepted fails after its retries; nothing is left behind.
    let stats = wait_for_stats(&exporter, "queued spans to fail", |s| s.queued == 0).await;
    assert_eq!(stats.exported, 0);
    assert_eq!(stats.failed, 10_000 - stats.dropped);
    assert!(stats.failed >= limits.queue_capacity as u64, "{stats:?}");
    let batches_failed = stats.failed.div_ceil(limits.max_batch_size as u64);
    assert!(
        stats.retries >= batches_failed * u64::from(limits.max_export_attempts - 1),
        "each failed batch is retried: {stats:?}"
    );
    assert_accounted(&stats);

    receiver.restart().await;
    exporter.submit(spans(&shop, 5, "after restart"));
    let received = receiver.wait_for_spans(5, WAIT).await;
    assert!(received.iter().all(|s| s.name == "after restart"));
    let stats = exporter.shutdown().await;
    assert_eq!(stats.exported, 5);
    assert_eq!(stats.queued, 0);
    assert_accounted(&stats);
}

#[tokio::test]
async fn collector_down_never_blocks_submit_then_recovers_grpc() {
    collector_down_then_up("grpc").await;
}

#[tokio::test]
async fn collector_down_never_blocks_submit_then_recovers_http() {
    collector_down_then_up("http/protobuf").await;
}

#[tokio::test]
async fn retryable_refusals_are_retried_until_delivered() {
    init_logs();
    let receiver = OtlpReceiver::start().await;
    receiver.reject_next(2, Reject::Retryable);
    let config = otlp(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint())]);
    let exporter = Exporter::start(ExportConfig::Otlp(config), fast_limits()).unwrap();
    exporter.submit(spans(&resource("shop", 1), 10, "GET /retry"));
    receiver.wait_for_spans(10, WAIT).await;
    let stats = exporter.shutdown().await;
    assert_eq!(receiver.rejected(), 2);
    assert_eq!(
        (stats.exported, stats.failed, stats.retries),
        (10, 0, 2),
        "{stats:?}"
    );
}

#[tokio::test]
async fn permanent_refusal_is_not_retried() {
    init_logs();
    let receiver = OtlpReceiver::start().await;
    receiver.reject_next(1, Reject::Permanent);
    let config = otlp(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]);
    let exporter = Exporter::start(ExportConfig::Otlp(config), fast_limits()).unwrap();
    let shop = resource("shop", 1);
    exporter.submit(spans(&shop, 10, "GET /rejected"));
    let stats = wait_for_stats(&exporter, "the refused batch to fail", |s| s.failed == 10).await;
    assert_eq!(
        (stats.exported, stats.retries, stats.queued),
        (0, 0, 0),
        "{stats:?}"
    );
    assert_eq!(receiver.rejected(), 1);
    // The exporter is still usable afterwards.
    exporter.submit(spans(&shop, 3, "GET /accepted"));
    let received = receiver.wait_for_spans(3, WAIT).await;
    assert!(received.iter().all(|s| s.name == "GET /accepted"));
    assert_eq!(exporter.shutdown().await.exported, 3);
}

#[tokio::test]
async fn slow_collector_times_out_and_never_blocks_submit() {
    init_logs();
    let receiver = OtlpReceiver::start().await;
    receiver.set_delay(Duration::from_millis(600));
    let config = otlp(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "100"),
    ]);
    assert_eq!(config.timeout, Duration::from_millis(100));
    let exporter = Exporter::start(ExportConfig::Otlp(config), fast_limits()).unwrap();
    let shop = resource("shop", 1);
    exporter.submit(spans(&shop, 10, "GET /slow"));
    // While the first batch hangs on the slow collector, submits still return at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    for n in 0..2_000 {
        exporter.submit(vec![span(&shop, n, "GET /slow")]);
    }
    // A submit that waited for the collector would take the 100 ms export timeout at least;
    // 2,000 of them would take minutes. The bound leaves room for a loaded CI machine.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let stats = wait_for_stats(&exporter, "all batches to time out", |s| s.queued == 0).await;
    assert_eq!(stats.exported, 0, "{stats:?}");
    assert_eq!(stats.failed + stats.dropped, 2_010, "{stats:?}");
    assert!(stats.retries >= 2, "{stats:?}");

    receiver.set_delay(Duration::ZERO);
    let before = receiver.spans().len();
    exporter.submit(spans(&shop, 4, "GET /fast again"));
    let received = receiver.wait_for_spans(before + 4, WAIT).await;
    assert_eq!(
        received
            .iter()
            .filter(|s| s.name == "GET /fast again")
            .count(),
        4
    );
    assert_eq!(exporter.shutdown().await.exported, 4);
}

// ---------------------------------------------------------------------------------------------
// Shutdown

#[tokio::test]
async fn shutdown_flushes_a_batch_that_is_still_filling() {
    init_logs();
    let receiver = OtlpReceiver::start().await;
    let config = otlp(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.http_endpoint())]);
    let limits = ExportLimits {
        max_batch_delay: Duration::from_secs(60),
        ..ExportLimits::default()
    };
    let exporter = Exporter::start(ExportConfig::Otlp(config), limits).unwrap();
    exporter.submit(spans(&resource("shop", 1), 10, "GET /flush"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        receiver.spans().is_empty(),
        "the 60 s batch delay holds spans back"
    );
    let started = Instant::now();
    let stats = exporter.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!((stats.exported, stats.queued), (10, 0));
    assert_eq!(
        receiver.spans().len(),
        10,
        "flushed before shutdown returned"
    );
}

#[tokio::test]
async fn shutdown_gives_up_within_its_timeout_when_the_collector_is_down() {
    init_logs();
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.grpc_endpoint();
    receiver.stop().await;
    let config = otlp(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]);
    // Retry limits far beyond the shutdown timeout: the timeout must win.
    let limits = ExportLimits {
        max_export_attempts: 1_000,
        initial_backoff: Duration::from_millis(100),
        max_retry_time: Duration::from_secs(600),
        shutdown_timeout: Duration::from_millis(300),
        ..fast_limits()
    };
    let exporter = Exporter::start(ExportConfig::Otlp(config), limits).unwrap();
    exporter.submit(spans(&resource("shop", 1), 500, "GET /lost"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let stats = exporter.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(800), "shutdown took {took:?}");
    assert_eq!(
        (stats.failed, stats.queued, stats.exported),
        (500, 0, 0),
        "{stats:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Stdout mode

#[tokio::test]
async fn stdout_mode_writes_one_line_per_span() {
    let (writer, mut reader) = tokio::io::duplex(1 << 20);
    let exporter = Exporter::start_with_writer(writer, fast_limits()).unwrap();
    let (sent, _, _) = rich_spans();
    exporter.submit(sent.clone());
    let stats = exporter.shutdown().await;
    assert_eq!((stats.exported, stats.failed), (5, 0));
    let mut text = String::new();
    reader.read_to_string(&mut text).await.unwrap();
    let expected: String = sent.iter().map(|s| format_span_line(s) + "\n").collect();
    assert_eq!(text, expected);
    assert!(
        text.starts_with(
            "2026-11-25T10:00:00.000Z GET /users/{id} 200 1.234ms service=shop pid=4242 kind=server \
             trace=4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b span=0000000000000001 parent=1111111111111111 \
             status=error error=\"upstream said no\" http.request.method=GET url.path=/users/0"
        ),
        "{text}"
    );
}

#[test]
fn no_endpoint_means_stdout_whatever_else_is_set() {
    let config = ExportConfig::from_env_map(&env(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "a=b"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "  "),
    ]))
    .unwrap();
    assert_eq!(config, ExportConfig::Stdout);
}

#[test]
fn exporter_can_be_shared_between_threads() {
    // The pipeline submits from several tasks through `&Exporter` (or an `Arc`).
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Exporter>();
}

#[test]
fn start_outside_a_runtime_is_a_clear_error() {
    let err = Exporter::start(ExportConfig::Stdout, ExportLimits::default())
        .err()
        .expect("no runtime here");
    assert!(err.to_string().contains("Tokio runtime"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Environment parsing

#[test]
fn endpoint_precedence_and_the_v1_traces_rule() {
    // (variables, resolved endpoint, variable it came from)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        // Generic endpoint, http/protobuf: the signal path is appended (one slash only).
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")],
            "http://c:4318/v1/traces",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")],
            "http://c:4318/v1/traces",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/otlp/")],
            "http://c:4318/otlp/v1/traces",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        // Generic endpoint, gRPC: used as is.
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ],
            "http://c:4317",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        // The traces endpoint wins and is never modified.
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://traces:4318/custom",
                ),
            ],
            "http://traces:4318/custom",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        // The alias counts as the traces endpoint...
        (
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
                ("OTEL_TRACES_ENDPOINT", "http://alias:4318"),
            ],
            "http://alias:4318",
            "OTEL_TRACES_ENDPOINT",
        ),
        // ...but the standard name beats it.
        (
            &[
                ("OTEL_TRACES_ENDPOINT", "http://alias:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318"),
            ],
            "http://traces:4318",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        // Empty means unset.
        (
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
            ],
            "http://generic:4318/v1/traces",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
    ];
    for (vars, endpoint, var) in cases {
        let config = otlp(vars);
        assert_eq!(config.endpoint, *endpoint, "{vars:?}");
        assert_eq!(config.endpoint_var, *var, "{vars:?}");
    }
}

#[test]
fn protocol_precedence_default_and_errors() {
    let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
    assert_eq!(otlp(&[base]).protocol, Protocol::HttpProtobuf);
    assert_eq!(
        otlp(&[base, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).protocol,
        Protocol::Grpc
    );
    assert_eq!(
        otlp(&[
            base,
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ])
        .protocol,
        Protocol::HttpProtobuf
    );
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift"),
    ] {
        let err = ExportConfig::from_env_map(&env(&[base, (var, value)])).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Protocol {
                var: if var.contains("TRACES") {
                    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
                } else {
                    "OTEL_EXPORTER_OTLP_PROTOCOL"
                },
                value: value.to_owned(),
            }
        );
        let message = err.to_string();
        for needle in [var, value, "\"grpc\"", "\"http/protobuf\""] {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
    }
}

#[test]
fn headers_precedence_and_decoding() {
    let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
    assert!(otlp(&[base]).headers.is_empty());
    assert_eq!(
        otlp(&[
            base,
            ("OTEL_EXPORTER_OTLP_HEADERS", "Api-Key=a%20b%2Cc,x=1")
        ])
        .headers,
        vec![("api-key".into(), "a b,c".into()), ("x".into(), "1".into())]
    );
    assert_eq!(
        otlp(&[
            base,
            ("OTEL_EXPORTER_OTLP_HEADERS", "generic=1"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "traces=2"),
        ])
        .headers,
        vec![("traces".into(), "2".into())]
    );
    let err = ExportConfig::from_env_map(&env(&[base, ("OTEL_EXPORTER_OTLP_HEADERS", "novalue")]))
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Header { var: "OTEL_EXPORTER_OTLP_HEADERS", entry, .. } if entry == "novalue"),
        "{err}"
    );
}

#[test]
fn timeout_precedence_default_and_errors() {
    let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
    assert_eq!(otlp(&[base]).timeout, DEFAULT_TIMEOUT);
    assert_eq!(
        otlp(&[base, ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")]).timeout,
        Duration::from_millis(2500)
    );
    assert_eq!(
        otlp(&[
            base,
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700"),
        ])
        .timeout,
        Duration::from_millis(700)
    );
    for bad in ["10s", "0", "-5"] {
        let err = ExportConfig::from_env_map(&env(&[base, ("OTEL_EXPORTER_OTLP_TIMEOUT", bad)]))
            .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Timeout {
                var: "OTEL_EXPORTER_OTLP_TIMEOUT",
                value: bad.into()
            }
        );
        assert!(err.to_string().contains("milliseconds"), "{err}");
    }
}

#[test]
fn unusable_endpoints_are_rejected_naming_the_variable() {
    for (var, value, reason) in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "no scheme"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "https://collector:4318/v1/traces",
            "no TLS",
        ),
        ("OTEL_TRACES_ENDPOINT", "ftp://collector", "not http"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://", ""),
    ] {
        let err = ExportConfig::from_env_map(&env(&[(var, value)])).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ConfigError::Endpoint { .. }), "{message}");
        assert!(message.starts_with(var), "{message}");
        assert!(message.contains(reason), "{value}: {message}");
    }
}
