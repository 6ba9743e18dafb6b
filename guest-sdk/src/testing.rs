//! Run a plugin natively in unit tests: build spans, process them, look at what comes out.
//!
//! Mirrors what the agent does (pack the batch, call `process`, apply the edits) so a plugin's
//! behaviour can be tested with plain `cargo test`, without a Wasm runtime.

use http_autoinstrument_plugin_layout::{
    put_range, put_u32, put_u64, ATTRIBUTE_KEY, ATTRIBUTE_ROW, ATTRIBUTE_TYPE, ATTRIBUTE_VALUE,
    KIND_CLIENT, KIND_SERVER, RESOURCE_ATTRIBUTES, RESOURCE_ROW, SPAN_ATTRIBUTES, SPAN_END,
    SPAN_KIND, SPAN_NAME, SPAN_RESOURCE, SPAN_ROW, SPAN_SPAN_ID, SPAN_START, SPAN_STATUS,
    SPAN_STATUS_MESSAGE, SPAN_TRACE_ID_HIGH, SPAN_TRACE_ID_LOW, STATUS_ERROR, STATUS_OK,
    STATUS_UNSET, TYPE_BOOL, TYPE_FLOAT, TYPE_INT, TYPE_STR,
};

use crate::bindings::http_autoinstrument::plugin::types::SpanBatch;
use crate::{Batch, Edit, Edits, NewValue, Plugin, SpanKind, StatusCode};

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

/// Packs `spans` like the host does (one resource per span here).
pub fn pack(spans: &[TestSpan]) -> SpanBatch {
    let mut batch = SpanBatch {
        text: Vec::new(),
        spans: Vec::new(),
        attributes: Vec::new(),
        resources: Vec::new(),
    };
    for (i, s) in spans.iter().enumerate() {
        let mut resource = [0u8; RESOURCE_ROW];
        put_range(
            &mut resource,
            RESOURCE_ATTRIBUTES,
            push_attributes(&mut batch, &s.resource),
        );
        batch.resources.extend_from_slice(&resource);
        let attributes = push_attributes(&mut batch, &s.attributes);
        let name = push_text(&mut batch.text, &s.name);
        let message = push_text(&mut batch.text, &s.status_message);
        let mut row = [0u8; SPAN_ROW];
        put_u64(&mut row, SPAN_TRACE_ID_HIGH, 1);
        put_u64(&mut row, SPAN_TRACE_ID_LOW, i as u64);
        put_u64(&mut row, SPAN_SPAN_ID, i as u64 + 1);
        put_u64(&mut row, SPAN_START, s.start_unix_nanos);
        put_u64(&mut row, SPAN_END, s.end_unix_nanos);
        put_range(&mut row, SPAN_NAME, name);
        put_range(&mut row, SPAN_STATUS_MESSAGE, message);
        put_range(&mut row, SPAN_ATTRIBUTES, attributes);
        put_u32(&mut row, SPAN_RESOURCE, i as u32);
        row[SPAN_KIND] = match s.kind {
            SpanKind::Server => KIND_SERVER,
            SpanKind::Client => KIND_CLIENT,
        };
        row[SPAN_STATUS] = match s.status {
            StatusCode::Unset => STATUS_UNSET,
            StatusCode::Ok => STATUS_OK,
            StatusCode::Error => STATUS_ERROR,
        };
        batch.spans.extend_from_slice(&row);
    }
    batch
}

fn push_text(text: &mut Vec<u8>, s: &str) -> (u32, u32) {
    let range = (text.len() as u32, s.len() as u32);
    text.extend_from_slice(s.as_bytes());
    range
}

fn push_attributes(batch: &mut SpanBatch, attrs: &[(String, NewValue)]) -> (u32, u32) {
    let first = (batch.attributes.len() / ATTRIBUTE_ROW) as u32;
    for (key, value) in attrs {
        let mut row = [0u8; ATTRIBUTE_ROW];
        put_range(&mut row, ATTRIBUTE_KEY, push_text(&mut batch.text, key));
        let (tag, payload) = match value {
            NewValue::Str(s) => {
                let (offset, len) = push_text(&mut batch.text, s);
                (TYPE_STR, u64::from(offset) | u64::from(len) << 32)
            }
            NewValue::Int(i) => (TYPE_INT, *i as u64),
            NewValue::Float(f) => (TYPE_FLOAT, f.to_bits()),
            NewValue::Boolean(b) => (TYPE_BOOL, u64::from(*b)),
        };
        row[ATTRIBUTE_TYPE] = tag;
        put_u64(&mut row, ATTRIBUTE_VALUE, payload);
        batch.attributes.extend_from_slice(&row);
    }
    (first, attrs.len() as u32)
}

/// Runs `spans` through `plugin` and returns the spans that come out, edits applied.
pub fn run<P: Plugin>(plugin: &mut P, spans: Vec<TestSpan>) -> Result<Vec<TestSpan>, String> {
    let batch = Batch::from_raw(pack(&spans));
    let mut edits = Edits::new();
    plugin.process(&batch, &mut edits)?;
    apply(spans, edits.to_vec())
}

/// Applies edits the way the host does (in order; an index outside the batch is an error).
pub fn apply(mut spans: Vec<TestSpan>, edits: Vec<Edit>) -> Result<Vec<TestSpan>, String> {
    let mut dropped = vec![false; spans.len()];
    if let Some(bad) = edits
        .iter()
        .map(Edit::span)
        .find(|i| *i as usize >= spans.len())
    {
        return Err(format!(
            "edit refers to span {bad} of a batch of {}",
            spans.len()
        ));
    }
    for edit in edits {
        let index = edit.span() as usize;
        let span = &mut spans[index];
        match edit {
            Edit::Drop(_) => dropped[index] = true,
            Edit::Rename { name, .. } => span.name = name,
            Edit::SetAttribute { key, value, .. } => span.set(&key, value),
            Edit::RemoveAttribute { key, .. } => span.attributes.retain(|(k, _)| *k != key),
            Edit::SetStatus { code, message, .. } => {
                span.status = code;
                span.status_message = message;
            }
        }
    }
    let mut keep = dropped.iter().map(|d| !d);
    spans.retain(|_| keep.next().unwrap_or(true));
    Ok(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    #[test]
    fn every_field_survives_packing_and_reading() {
        let span = TestSpan {
            kind: SpanKind::Client,
            status: StatusCode::Error,
            status_message: "boom".into(),
            ..TestSpan::new("GET /é")
        }
        .attr("url.path", "/a")
        .attr("n", 7i64)
        .attr("f", 1.5f64)
        .attr("b", true)
        .resource_attr("service.name", "shop")
        .duration_nanos(500);
        let batch = Batch::from_raw(pack(&[TestSpan::new("first"), span]));
        assert_eq!(batch.len(), 2);
        let s = batch.span(1).unwrap();
        assert_eq!(s.index(), 1);
        assert_eq!(s.name(), "GET /é");
        assert_eq!(s.kind(), SpanKind::Client);
        assert_eq!(s.status(), StatusCode::Error);
        assert_eq!(s.status_message(), "boom");
        assert_eq!(s.duration_nanos(), 500);
        assert_eq!(s.trace_id(), (1u128 << 64) | 1);
        assert_eq!(s.span_id(), 2);
        assert_eq!(s.parent_span_id(), None);
        assert_eq!(s.str_attribute("url.path"), Some("/a"));
        assert_eq!(s.int_attribute("n"), Some(7));
        assert_eq!(s.attribute("f"), Some(Value::Float(1.5)));
        assert_eq!(s.attribute("b"), Some(Value::Bool(true)));
        assert_eq!(s.attribute("missing"), None);
        assert_eq!(s.attributes().count(), 4);
        assert_eq!(
            s.resource_attribute("service.name"),
            Some(Value::Str("shop"))
        );
        assert!(batch.span(2).is_none());
    }

    #[test]
    fn lookups_find_every_key_whatever_each_spans_attribute_order() {
        // The second span moves, drops and adds keys, the third has fewer attributes, the
        // fourth has a key as long as `url.path` that differs by a byte: each lookup finds its
        // key wherever the span has it, and nothing where it has none, one key at a time or
        // several in one pass (a key asked for twice is found twice).
        let spans = [
            TestSpan::new("a")
                .attr("url.path", "/a")
                .attr("http.route", "/a")
                .attr("n", 1i64),
            TestSpan::new("b")
                .attr("n", 2i64)
                .attr("extra", "x")
                .attr("url.path", "/b"),
            TestSpan::new("c").attr("http.route", "/c"),
            TestSpan::new("d")
                .attr("url.pxth", "/x")
                .attr("n", 3i64)
                .attr("url.path", "/d"),
        ];
        let batch = Batch::from_raw(pack(&spans));
        let keys = ["url.path", "http.route", "n", "extra"];
        let found: Vec<Vec<Option<Value<'_>>>> = batch
            .spans()
            .map(|s| keys.iter().map(|k| s.attribute(k)).collect())
            .collect();
        assert_eq!(
            found,
            vec![
                vec![
                    Some(Value::Str("/a")),
                    Some(Value::Str("/a")),
                    Some(Value::Int(1)),
                    None
                ],
                vec![
                    Some(Value::Str("/b")),
                    None,
                    Some(Value::Int(2)),
                    Some(Value::Str("x"))
                ],
                vec![None, Some(Value::Str("/c")), None, None],
                vec![Some(Value::Str("/d")), None, Some(Value::Int(3)), None],
            ]
        );
        let in_one_pass: Vec<Vec<Option<Value<'_>>>> = batch
            .spans()
            .map(|s| s.attributes_of(keys).to_vec())
            .collect();
        assert_eq!(in_one_pass, found);
        let twice = batch.span(3).unwrap().attributes_of(["n", "n"]);
        assert_eq!(twice, [Some(Value::Int(3)); 2]);
        assert_eq!(batch.span(2).unwrap().attributes_of([]), []);
    }

    #[test]
    fn out_of_range_or_invalid_strings_read_as_empty() {
        let mut raw = pack(&[TestSpan::new("GET").attr("k", "v")]);
        // Name range past the end of the text.
        raw.spans[SPAN_NAME + 4..SPAN_NAME + 8].copy_from_slice(&1000u32.to_le_bytes());
        let batch = Batch::from_raw(raw);
        assert_eq!(batch.span(0).unwrap().name(), "");
        let mut raw = pack(&[TestSpan::new("GET").attr("k", "v")]);
        raw.text.push(0xff);
        let batch = Batch::from_raw(raw);
        let s = batch.span(0).unwrap();
        assert_eq!((s.name(), s.str_attribute("k")), ("GET", Some("v")));
    }

    #[test]
    fn edits_pack_and_decode_in_order() {
        let batch = Batch::from_raw(pack(&[TestSpan::new("a"), TestSpan::new("b")]));
        let s = batch.span(1).unwrap();
        let mut edits = Edits::new();
        edits.set_attribute(&s, "k", "v");
        edits.set_attribute(&s, "n", -3i64);
        edits.set_attribute(&s, "f", 2.5f64);
        edits.set_attribute(&s, "b", false);
        edits.rename(&s, String::from("c"));
        edits.remove_attribute(&s, "x");
        edits.set_status(&s, StatusCode::Error, "bad");
        edits.drop(&s);
        edits.push_raw(Edit::Drop(9));
        assert_eq!(edits.len(), 9);
        let set = |key: &str, value: NewValue| Edit::SetAttribute {
            span: 1,
            key: key.into(),
            value,
        };
        assert_eq!(
            edits.to_vec(),
            vec![
                set("k", NewValue::Str("v".into())),
                set("n", NewValue::Int(-3)),
                set("f", NewValue::Float(2.5)),
                set("b", NewValue::Boolean(false)),
                Edit::Rename {
                    span: 1,
                    name: "c".into()
                },
                Edit::RemoveAttribute {
                    span: 1,
                    key: "x".into()
                },
                Edit::SetStatus {
                    span: 1,
                    code: StatusCode::Error,
                    message: "bad".into()
                },
                Edit::Drop(1),
                Edit::Drop(9),
            ]
        );
        let raw = edits.into_raw();
        assert_eq!(raw.ops.len(), 9 * 24);
    }

    #[test]
    fn a_key_set_on_every_span_is_written_once_and_a_reused_buffer_keeps_its_keys() {
        let batch = Batch::from_raw(pack(&[TestSpan::new("a"), TestSpan::new("b")]));
        let (a, b) = (batch.span(0).unwrap(), batch.span(1).unwrap());
        let mut edits = Edits::new();
        edits.set_attribute(&a, "http.route", "/x");
        edits.set_attribute(&b, "http.route", "/y");
        // One buffer holding different keys of one length: compared by content, not address.
        let mut key = String::from("app.one");
        edits.set_attribute(&a, key.as_str(), 1i64);
        key.clear();
        key.push_str("app.two");
        edits.set_attribute(&a, key.as_str(), 2i64);
        edits.set_attribute(&b, "", 3i64);
        let set = |span: u32, key: &str, value: NewValue| Edit::SetAttribute {
            span,
            key: key.into(),
            value,
        };
        assert_eq!(
            edits.to_vec(),
            vec![
                set(0, "http.route", NewValue::Str("/x".into())),
                set(1, "http.route", NewValue::Str("/y".into())),
                set(0, "app.one", NewValue::Int(1)),
                set(0, "app.two", NewValue::Int(2)),
                set(1, "", NewValue::Int(3)),
            ]
        );
        assert_eq!(
            edits.text_len(),
            "http.route/x/yapp.oneapp.two".len(),
            "http.route once"
        );
    }
}
