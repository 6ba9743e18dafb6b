//! The agent's `Span`/`Resource` as the SDK types opentelemetry-otlp exports.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanContext, SpanId, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::span::{Attribute, AttributeValue, Resource, Span, SpanKind, SpanStatus};

/// Instrumentation scope name on every exported span.
pub const SCOPE_NAME: &str = "http-autoinstrument";

pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

pub(crate) fn resource(resource: &Resource) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder_empty()
        .with_attributes(resource.attributes.iter().map(key_value))
        .build()
}

/// The span as opentelemetry-otlp takes it, for one export attempt: the exporter consumes what
/// it is given, and the agent keeps its own spans for a retry, so each attempt converts them.
pub(crate) fn span_data(span: &Span, scope: &InstrumentationScope) -> SpanData {
    SpanData {
        // The agent only produces spans it decided to record, hence SAMPLED.
        span_context: SpanContext::new(
            TraceId::from_bytes(span.trace_id),
            SpanId::from_bytes(span.span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: span
            .parent_span_id
            .map_or(SpanId::INVALID, SpanId::from_bytes),
        // A server span's parent came from the caller's traceparent header (another process);
        // a client span's parent is the server span of the same process.
        parent_span_is_remote: span.parent_span_id.is_some() && span.kind == SpanKind::Server,
        span_kind: match span.kind {
            SpanKind::Server => opentelemetry::trace::SpanKind::Server,
            SpanKind::Client => opentelemetry::trace::SpanKind::Client,
        },
        name: span.name.clone(),
        start_time: unix_nanos(span.start_unix_nanos),
        end_time: unix_nanos(span.end_unix_nanos),
        attributes: span.attributes.iter().map(key_value).collect(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match &span.status {
            SpanStatus::Unset => Status::Unset,
            SpanStatus::Ok => Status::Ok,
            SpanStatus::Error { description } => Status::error(description.clone()),
        },
        instrumentation_scope: scope.clone(),
    }
}

/// The agent's constant keys and values go over as static text, with no copy; owned text is
/// copied once (opentelemetry-proto then copies it again into the protobuf types), into an
/// `Arc<str>`: handing over the `Cow` as it is (an owned `String` for owned text) cost the
/// pipeline's OTLP stage more.
fn key_value(attribute: &Attribute) -> KeyValue {
    let key = match &attribute.key {
        Cow::Owned(k) => Key::from(Arc::<str>::from(k.as_str())),
        Cow::Borrowed(k) => Key::from_static_str(k),
    };
    // One `KeyValue` per arm, not a `Value` made first: that one was built on the stack and
    // copied with loads straddling its stores, a store-forwarding stall per attribute.
    match &attribute.value {
        AttributeValue::Str(Cow::Owned(s)) => {
            KeyValue::new(key, Value::String(Arc::<str>::from(s.as_str()).into()))
        }
        AttributeValue::Str(Cow::Borrowed(s)) => KeyValue::new(key, Value::from(*s)),
        AttributeValue::Int(i) => KeyValue::new(key, Value::I64(*i)),
        AttributeValue::Float(x) => KeyValue::new(key, Value::F64(*x)),
        AttributeValue::Bool(b) => KeyValue::new(key, Value::Bool(*b)),
    }
}

fn unix_nanos(nanos: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_carried_over() {
        let span = Span {
            trace_id: [7; 16],
            span_id: [8; 8],
            parent_span_id: Some([9; 8]),
            name: "GET /users/{id}".into(),
            kind: SpanKind::Server,
            start_unix_nanos: 1_700_000_000_000_000_001,
            end_unix_nanos: 1_700_000_000_002_000_001,
            status: SpanStatus::Error {
                description: "boom".into(),
            },
            attributes: vec![
                Attribute::new("s", "v"),
                Attribute::new("i", 42),
                Attribute::new("f", AttributeValue::Float(1.5)),
                Attribute::new("b", true),
                Attribute::new(String::from("from.plugin"), String::from("owned text")),
            ],
            resource: Arc::new(Resource::default()),
        };
        let data = span_data(&span, &scope());
        assert_eq!(data.span_context.trace_id(), TraceId::from_bytes([7; 16]));
        assert_eq!(data.span_context.span_id(), SpanId::from_bytes([8; 8]));
        assert!(data.span_context.is_sampled());
        assert_eq!(data.parent_span_id, SpanId::from_bytes([9; 8]));
        assert!(data.parent_span_is_remote);
        assert_eq!(data.span_kind, opentelemetry::trace::SpanKind::Server);
        assert_eq!(data.name, "GET /users/{id}");
        assert_eq!(
            data.end_time.duration_since(data.start_time).unwrap(),
            Duration::from_millis(2)
        );
        assert_eq!(
            data.start_time
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
            1_700_000_000_000_000_001
        );
        assert_eq!(
            data.attributes,
            vec![
                KeyValue::new("s", "v"),
                KeyValue::new("i", 42),
                KeyValue::new("f", 1.5),
                KeyValue::new("b", true),
                KeyValue::new("from.plugin", "owned text"),
            ]
        );
        assert_eq!(data.status, Status::error("boom"));
        assert_eq!(data.instrumentation_scope.name(), SCOPE_NAME);
        assert_eq!(
            data.instrumentation_scope.version(),
            Some(env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn root_and_client_spans_have_no_remote_parent() {
        let mut span = Span::for_tests(Arc::new(Resource::default()), [2; 8]);
        let root = span_data(&span, &scope());
        assert_eq!(root.parent_span_id, SpanId::INVALID);
        assert!(!root.parent_span_is_remote);
        span.kind = SpanKind::Client;
        span.parent_span_id = Some([3; 8]);
        let client = span_data(&span, &scope());
        assert!(!client.parent_span_is_remote);
        assert_eq!(client.span_kind, opentelemetry::trace::SpanKind::Client);
    }
}
