//! Read-only views over the packed batch the host sends.

use crate::bindings::http_autoinstrument::plugin::types::{
    self as wit, SpanBatch, SpanKind, StatusCode,
};

/// A batch of spans as the host sent it. Strings are borrowed from one shared buffer.
pub struct Batch {
    raw: SpanBatch,
}

/// An attribute value borrowed from the batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl<'a> Value<'a> {
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl Batch {
    pub fn from_raw(raw: SpanBatch) -> Self {
        Batch { raw }
    }

    pub fn len(&self) -> usize {
        self.raw.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.spans.is_empty()
    }

    pub fn spans(&self) -> impl ExactSizeIterator<Item = SpanRef<'_>> {
        self.raw
            .spans
            .iter()
            .enumerate()
            .map(move |(i, span)| SpanRef {
                batch: &self.raw,
                index: i as u32,
                span,
            })
    }

    pub fn span(&self, index: usize) -> Option<SpanRef<'_>> {
        self.raw.spans.get(index).map(|span| SpanRef {
            batch: &self.raw,
            index: index as u32,
            span,
        })
    }
}

/// One span of a [`Batch`].
#[derive(Clone, Copy)]
pub struct SpanRef<'a> {
    batch: &'a SpanBatch,
    index: u32,
    span: &'a wit::Span,
}

impl<'a> SpanRef<'a> {
    /// Position in the batch; what edits refer to.
    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn name(&self) -> &'a str {
        text(self.batch, self.span.name)
    }

    pub fn kind(&self) -> SpanKind {
        self.span.kind
    }

    pub fn start_unix_nanos(&self) -> u64 {
        self.span.start_unix_nanos
    }

    pub fn end_unix_nanos(&self) -> u64 {
        self.span.end_unix_nanos
    }

    pub fn duration_nanos(&self) -> u64 {
        self.span
            .end_unix_nanos
            .saturating_sub(self.span.start_unix_nanos)
    }

    pub fn status(&self) -> StatusCode {
        self.span.status
    }

    pub fn status_message(&self) -> &'a str {
        text(self.batch, self.span.status_message)
    }

    pub fn trace_id(&self) -> u128 {
        (u128::from(self.span.trace_id_high) << 64) | u128::from(self.span.trace_id_low)
    }

    pub fn span_id(&self) -> u64 {
        self.span.span_id
    }

    pub fn parent_span_id(&self) -> Option<u64> {
        self.span.parent_span_id
    }

    /// Every attribute of the span, in order.
    pub fn attributes(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + 'a {
        attributes(self.batch, self.span.attributes)
    }

    pub fn attribute(&self, key: &str) -> Option<Value<'a>> {
        self.attributes().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The attribute's value if it is a string.
    pub fn str_attribute(&self, key: &str) -> Option<&'a str> {
        self.attribute(key).and_then(|v| v.as_str())
    }

    pub fn int_attribute(&self, key: &str) -> Option<i64> {
        self.attribute(key).and_then(|v| v.as_int())
    }

    /// Attributes of the process that produced the span (`service.name`, ...).
    pub fn resource_attributes(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + 'a {
        let range = self
            .batch
            .resources
            .get(self.span.resource as usize)
            .map(|r| r.attributes)
            .unwrap_or(wit::AttributeRange { start: 0, len: 0 });
        attributes(self.batch, range)
    }

    pub fn resource_attribute(&self, key: &str) -> Option<Value<'a>> {
        self.resource_attributes()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

fn attributes(
    batch: &SpanBatch,
    range: wit::AttributeRange,
) -> impl Iterator<Item = (&str, Value<'_>)> {
    let start = range.start as usize;
    let end = start.saturating_add(range.len as usize);
    batch
        .attributes
        .get(start..end)
        .unwrap_or(&[])
        .iter()
        .map(move |a| (text(batch, a.key), value(batch, a.value)))
}

fn value(batch: &SpanBatch, v: wit::Value) -> Value<'_> {
    match v {
        wit::Value::Str(t) => Value::Str(text(batch, t)),
        wit::Value::Int(i) => Value::Int(i),
        wit::Value::Float(f) => Value::Float(f),
        wit::Value::Boolean(b) => Value::Bool(b),
    }
}

/// The string at `t`; empty if the range is out of bounds or not UTF-8 (the host never sends
/// either, but a plugin must not panic on them).
fn text(batch: &SpanBatch, t: wit::Text) -> &str {
    let start = t.offset as usize;
    let end = start.saturating_add(t.len as usize);
    batch
        .text
        .get(start..end)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .unwrap_or("")
}
