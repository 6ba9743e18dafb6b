//! Spans as JSON lines, for `plugin run` (hand-written or recorded input, and its output).
//!
//! One span per line:
//! `{"name": "GET", "kind": "server", "start_unix_nanos": 1, "end_unix_nanos": 2,
//!   "status": {"code": "error", "message": "boom"},
//!   "attributes": {"url.path": "/users/1", "http.response.status_code": 200},
//!   "resource": {"service.name": "shop"}}`
//! Everything but `name` is optional; ids are hex (`trace_id` 32 digits, span ids 16).

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::span::{Attribute, AttributeValue, Resource, Span, SpanKind, SpanStatus};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpanRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub kind: Kind,
    #[serde(default)]
    pub start_unix_nanos: u64,
    #[serde(default)]
    pub end_unix_nanos: u64,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub attributes: Map<String, Value>,
    #[serde(default)]
    pub resource: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize, Serialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Server,
    Client,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    pub code: StatusCode,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

/// Parses one line into a span.
pub fn parse_span(line: &str) -> Result<Span> {
    let record: SpanRecord = serde_json::from_str(line)?;
    let resource = Arc::new(Resource {
        attributes: attributes(&record.resource).context("in \"resource\"")?,
    });
    Ok(Span {
        trace_id: hex_id(record.trace_id.as_deref(), "trace_id")?,
        span_id: hex_id(record.span_id.as_deref(), "span_id")?,
        parent_span_id: match record.parent_span_id.as_deref() {
            Some(id) => Some(hex_id(Some(id), "parent_span_id")?),
            None => None,
        },
        name: record.name.into(),
        kind: match record.kind {
            Kind::Server => SpanKind::Server,
            Kind::Client => SpanKind::Client,
        },
        start_unix_nanos: record.start_unix_nanos,
        end_unix_nanos: record.end_unix_nanos,
        status: match record.status.code {
            StatusCode::Unset => SpanStatus::Unset,
            StatusCode::Ok => SpanStatus::Ok,
            StatusCode::Error => SpanStatus::Error {
                description: record.status.message,
            },
        },
        attributes: attributes(&record.attributes).context("in \"attributes\"")?,
        resource,
    })
}

/// The JSON form of a span (the inverse of [`parse_span`]).
pub fn span_record(span: &Span) -> SpanRecord {
    let to_map = |attrs: &[Attribute]| {
        attrs
            .iter()
            .map(|a| {
                let v = match &a.value {
                    AttributeValue::Str(s) => Value::from(s.as_ref()),
                    AttributeValue::Int(i) => Value::from(*i),
                    AttributeValue::Float(f) => Value::from(*f),
                    AttributeValue::Bool(b) => Value::from(*b),
                };
                (a.key.to_string(), v)
            })
            .collect()
    };
    SpanRecord {
        trace_id: Some(hex(&span.trace_id)),
        span_id: Some(hex(&span.span_id)),
        parent_span_id: span.parent_span_id.map(|p| hex(&p)),
        name: span.name.to_string(),
        kind: match span.kind {
            SpanKind::Server => Kind::Server,
            SpanKind::Client => Kind::Client,
        },
        start_unix_nanos: span.start_unix_nanos,
        end_unix_nanos: span.end_unix_nanos,
        status: match &span.status {
            SpanStatus::Unset => Status::default(),
            SpanStatus::Ok => Status {
                code: StatusCode::Ok,
                message: String::new(),
            },
            SpanStatus::Error { description } => Status {
                code: StatusCode::Error,
                message: description.clone(),
            },
        },
        attributes: to_map(&span.attributes),
        resource: to_map(&span.resource.attributes),
    }
}

fn attributes(map: &Map<String, Value>) -> Result<Vec<Attribute>> {
    map.iter()
        .map(|(key, value)| {
            let value = match value {
                Value::String(s) => AttributeValue::from(s.clone()),
                Value::Bool(b) => AttributeValue::Bool(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => AttributeValue::Int(i),
                    None => AttributeValue::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
                _ => bail!("attribute {key:?}: only strings, numbers and booleans are supported"),
            };
            Ok(Attribute::new(key.clone(), value))
        })
        .collect()
}

fn hex_id<const N: usize>(id: Option<&str>, field: &str) -> Result<[u8; N]> {
    let mut out = [0u8; N];
    let Some(id) = id else {
        out[N - 1] = 1; // a valid (non-zero) id when none is given
        return Ok(out);
    };
    if id.len() != 2 * N || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{field} must be {} hex digits, got {id:?}", 2 * N);
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&id[2 * i..2 * i + 2], 16)?;
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_span() {
        let line = r#"{"trace_id":"0102030405060708090a0b0c0d0e0f10","span_id":"0102030405060708","name":"GET","status":{"code":"error","message":"boom"},"attributes":{"url.path":"/a","code":200,"ok":true,"ratio":0.5},"resource":{"service.name":"shop"}}"#;
        let span = parse_span(line).unwrap();
        assert_eq!(span.trace_id[15], 0x10);
        assert_eq!(span.attribute("code"), Some(&AttributeValue::Int(200)));
        assert_eq!(span.attribute("ratio"), Some(&AttributeValue::Float(0.5)));
        assert_eq!(span.resource.service_name(), "shop");
        let again = serde_json::to_string(&span_record(&span)).unwrap();
        assert_eq!(parse_span(&again).unwrap(), span);
    }

    #[test]
    fn bad_input_names_the_field() {
        let err = format!(
            "{:#}",
            parse_span(r#"{"name":"x","attributes":{"a":[1]}}"#).unwrap_err()
        );
        assert!(err.contains("attribute \"a\""), "{err}");
        let err = format!(
            "{:#}",
            parse_span(r#"{"name":"x","span_id":"zz"}"#).unwrap_err()
        );
        assert!(err.contains("span_id must be 16 hex digits"), "{err}");
        let err = format!("{:#}", parse_span(r#"{"nam":"x"}"#).unwrap_err());
        assert!(err.contains("unknown field"), "{err}");
    }
}
