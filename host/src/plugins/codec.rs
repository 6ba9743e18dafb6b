//! Packs spans into the WIT `span-batch` (one text buffer, flat attribute list), reusing the
//! buffers from call to call so the hot path does not allocate once they have grown.

use std::sync::Arc;

use crate::span::{Attribute, AttributeValue, Resource, Span, SpanKind, SpanStatus};

use super::bindings::types as wit;

pub struct BatchEncoder {
    batch: wit::SpanBatch,
    /// Resources already packed in this batch, by identity (spans of one process share one).
    resources: Vec<*const Resource>,
}

// SAFETY: the raw pointers are only compared for identity while the spans they came from are
// borrowed by `encode`; they are never dereferenced.
unsafe impl Send for BatchEncoder {}

impl Default for BatchEncoder {
    fn default() -> Self {
        BatchEncoder {
            batch: wit::SpanBatch {
                text: Vec::new(),
                attributes: Vec::new(),
                resources: Vec::new(),
                spans: Vec::new(),
            },
            resources: Vec::new(),
        }
    }
}

impl BatchEncoder {
    pub fn encode(&mut self, spans: &[Span]) -> &wit::SpanBatch {
        let b = &mut self.batch;
        b.text.clear();
        b.attributes.clear();
        b.resources.clear();
        b.spans.clear();
        self.resources.clear();
        for span in spans {
            let resource = resource_index(&mut self.resources, b, &span.resource);
            let attributes = push_attributes(b, &span.attributes);
            let name = push_text(&mut b.text, &span.name);
            let (status, message) = match &span.status {
                SpanStatus::Unset => (wit::StatusCode::Unset, ""),
                SpanStatus::Ok => (wit::StatusCode::Ok, ""),
                SpanStatus::Error { description } => (wit::StatusCode::Error, description.as_str()),
            };
            let status_message = push_text(&mut b.text, message);
            b.spans.push(wit::Span {
                trace_id_high: u64::from_be_bytes(
                    span.trace_id[..8].try_into().unwrap_or_default(),
                ),
                trace_id_low: u64::from_be_bytes(span.trace_id[8..].try_into().unwrap_or_default()),
                span_id: u64::from_be_bytes(span.span_id),
                parent_span_id: span.parent_span_id.map(u64::from_be_bytes),
                name,
                kind: match span.kind {
                    SpanKind::Server => wit::SpanKind::Server,
                    SpanKind::Client => wit::SpanKind::Client,
                },
                start_unix_nanos: span.start_unix_nanos,
                end_unix_nanos: span.end_unix_nanos,
                status,
                status_message,
                resource,
                attributes,
            });
        }
        &self.batch
    }
}

fn resource_index(
    seen: &mut Vec<*const Resource>,
    b: &mut wit::SpanBatch,
    r: &Arc<Resource>,
) -> u32 {
    let ptr = Arc::as_ptr(r);
    if let Some(i) = seen.iter().position(|p| *p == ptr) {
        return i as u32;
    }
    let attributes = push_attributes(b, &r.attributes);
    b.resources.push(wit::Resource { attributes });
    seen.push(ptr);
    (seen.len() - 1) as u32
}

fn push_attributes(b: &mut wit::SpanBatch, attrs: &[Attribute]) -> wit::AttributeRange {
    let start = b.attributes.len() as u32;
    for a in attrs {
        let key = push_text(&mut b.text, &a.key);
        let value = match &a.value {
            AttributeValue::Str(s) => wit::Value::Str(push_text(&mut b.text, s)),
            AttributeValue::Int(i) => wit::Value::Int(*i),
            AttributeValue::Float(f) => wit::Value::Float(*f),
            AttributeValue::Bool(v) => wit::Value::Boolean(*v),
        };
        b.attributes.push(wit::Attribute { key, value });
    }
    wit::AttributeRange {
        start,
        len: attrs.len() as u32,
    }
}

fn push_text(text: &mut Vec<u8>, s: &str) -> wit::Text {
    let offset = text.len() as u32;
    text.extend_from_slice(s.as_bytes());
    wit::Text {
        offset,
        len: s.len() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(resource: &Arc<Resource>, path: &str) -> Span {
        Span {
            trace_id: [7; 16],
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent_span_id: None,
            name: "GET".into(),
            kind: SpanKind::Server,
            start_unix_nanos: 10,
            end_unix_nanos: 20,
            status: SpanStatus::Error {
                description: "boom".into(),
            },
            attributes: vec![
                Attribute::new("url.path", path),
                Attribute::new("http.response.status_code", 500i64),
            ],
            resource: resource.clone(),
        }
    }

    fn text(b: &wit::SpanBatch, t: wit::Text) -> &str {
        std::str::from_utf8(&b.text[t.offset as usize..(t.offset + t.len) as usize]).unwrap()
    }

    #[test]
    fn packs_strings_attributes_and_shared_resources_once() {
        let r = Arc::new(Resource {
            attributes: vec![Attribute::new("service.name", "shop")],
        });
        let mut enc = BatchEncoder::default();
        let b = enc.encode(&[span(&r, "/a"), span(&r, "/b")]);
        assert_eq!(b.resources.len(), 1, "one resource shared by both spans");
        assert_eq!(b.spans.len(), 2);
        let s1 = &b.spans[1];
        assert_eq!(text(b, s1.name), "GET");
        assert_eq!(text(b, s1.status_message), "boom");
        assert_eq!(s1.span_id, 0x0102030405060708);
        let a = &b.attributes[s1.attributes.start as usize];
        assert_eq!(text(b, a.key), "url.path");
        assert!(matches!(a.value, wit::Value::Str(t) if text(b, t) == "/b"));
        let ra = &b.attributes[b.resources[0].attributes.start as usize];
        assert_eq!(text(b, ra.key), "service.name");
    }

    #[test]
    fn reuses_buffers_between_batches() {
        let r = Arc::new(Resource::default());
        let mut enc = BatchEncoder::default();
        enc.encode(&[span(&r, "/a"), span(&r, "/b")]);
        let b = enc.encode(&[span(&r, "/c")]);
        assert_eq!(b.spans.len(), 1);
        assert_eq!(b.attributes.len(), 2);
    }
}
