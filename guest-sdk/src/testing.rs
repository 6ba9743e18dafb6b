//! Run a plugin natively in unit tests: build spans, process them, look at what comes out.
//!
//! Mirrors what the agent does (pack the batch, call `process`, apply the edits) so a plugin's
//! behaviour can be tested with plain `cargo test`, without a Wasm runtime.

use crate::bindings::http_autoinstrument::plugin::types::{
    self as wit, Edit, NewValue, SpanBatch, SpanKind, StatusCode,
};
use crate::{Batch, Edits, Plugin};

/// An owned span for tests.
#[derive(Clone, Debug, PartialEq)]
pub struct TestSpan {
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub status: StatusCode,
    pub status_message: String,
    pub attributes: Vec<(String, NewValue)>,
    pub resource: Vec<(String, NewValue)>,
}

impl TestSpan {
    pub fn new(name: &str) -> Self {
        TestSpan {
            name: name.to_owned(),
            kind: SpanKind::Server,
            start_unix_nanos: 1_000,
            end_unix_nanos: 2_000,
            status: StatusCode::Unset,
            status_message: String::new(),
            attributes: Vec::new(),
            resource: Vec::new(),
        }
    }

    pub fn attr(mut self, key: &str, value: impl Into<NewValue>) -> Self {
        self.set(key, value.into());
        self
    }

    pub fn resource_attr(mut self, key: &str, value: impl Into<NewValue>) -> Self {
        self.resource.push((key.to_owned(), value.into()));
        self
    }

    pub fn duration_nanos(mut self, nanos: u64) -> Self {
        self.end_unix_nanos = self.start_unix_nanos + nanos;
        self
    }

    pub fn get(&self, key: &str) -> Option<&NewValue> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn str_attr(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(NewValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn int_attr(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(NewValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn bool_attr(&self, key: &str) -> Option<bool> {
        match self.get(key) {
            Some(NewValue::Boolean(b)) => Some(*b),
            _ => None,
        }
    }

    fn set(&mut self, key: &str, value: NewValue) {
        match self.attributes.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((key.to_owned(), value)),
        }
    }
}

/// Packs `spans` like the host does.
pub fn pack(spans: &[TestSpan]) -> SpanBatch {
    let mut batch = SpanBatch {
        text: Vec::new(),
        attributes: Vec::new(),
        resources: Vec::new(),
        spans: Vec::new(),
    };
    for (i, s) in spans.iter().enumerate() {
        let resource_attrs = push_attributes(&mut batch, &s.resource);
        batch.resources.push(wit::Resource {
            attributes: resource_attrs,
        });
        let attributes = push_attributes(&mut batch, &s.attributes);
        let name = push_text(&mut batch.text, &s.name);
        let status_message = push_text(&mut batch.text, &s.status_message);
        batch.spans.push(wit::Span {
            trace_id_high: 1,
            trace_id_low: i as u64,
            span_id: i as u64 + 1,
            parent_span_id: None,
            name,
            kind: s.kind,
            start_unix_nanos: s.start_unix_nanos,
            end_unix_nanos: s.end_unix_nanos,
            status: s.status,
            status_message,
            resource: i as u32,
            attributes,
        });
    }
    batch
}

fn push_text(text: &mut Vec<u8>, s: &str) -> wit::Text {
    let offset = text.len() as u32;
    text.extend_from_slice(s.as_bytes());
    wit::Text {
        offset,
        len: s.len() as u32,
    }
}

fn push_attributes(batch: &mut SpanBatch, attrs: &[(String, NewValue)]) -> wit::AttributeRange {
    let start = batch.attributes.len() as u32;
    for (key, value) in attrs {
        let key = push_text(&mut batch.text, key);
        let value = match value {
            NewValue::Str(s) => wit::Value::Str(push_text(&mut batch.text, s)),
            NewValue::Int(i) => wit::Value::Int(*i),
            NewValue::Float(f) => wit::Value::Float(*f),
            NewValue::Boolean(b) => wit::Value::Boolean(*b),
        };
        batch.attributes.push(wit::Attribute { key, value });
    }
    wit::AttributeRange {
        start,
        len: attrs.len() as u32,
    }
}

/// Runs `spans` through `plugin` and returns the spans that come out, edits applied.
pub fn run<P: Plugin>(plugin: &mut P, spans: Vec<TestSpan>) -> Result<Vec<TestSpan>, String> {
    let batch = Batch::from_raw(pack(&spans));
    let mut edits = Edits::new();
    plugin.process(&batch, &mut edits)?;
    apply(spans, edits.into_vec())
}

/// Applies edits the way the host does (in order; an index outside the batch is an error).
pub fn apply(mut spans: Vec<TestSpan>, edits: Vec<Edit>) -> Result<Vec<TestSpan>, String> {
    let mut dropped = vec![false; spans.len()];
    for edit in edits {
        let index = match &edit {
            Edit::Drop(i) => *i,
            Edit::Rename(r) => r.span,
            Edit::SetAttribute(s) => s.span,
            Edit::RemoveAttribute(r) => r.span,
            Edit::SetStatus(s) => s.span,
        } as usize;
        let span = spans.get_mut(index).ok_or_else(|| {
            format!(
                "edit refers to span {index} of a batch of {}",
                dropped.len()
            )
        })?;
        match edit {
            Edit::Drop(_) => dropped[index] = true,
            Edit::Rename(r) => span.name = r.name,
            Edit::SetAttribute(s) => span.set(&s.key, s.value),
            Edit::RemoveAttribute(r) => span.attributes.retain(|(k, _)| *k != r.key),
            Edit::SetStatus(s) => {
                span.status = s.code;
                span.status_message = s.message;
            }
        }
    }
    let mut keep = dropped.iter().map(|d| !d);
    spans.retain(|_| keep.next().unwrap_or(true));
    Ok(spans)
}
