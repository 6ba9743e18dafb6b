//! Applies a plugin's edits to the batch, enforcing the host's limits: a plugin cannot make a
//! span or the agent unbounded (long strings are truncated, excess attributes and bad keys are
//! rejected; an edit outside the batch, a malformed edit or an absurd number of edits fails the
//! call). Edits arrive packed (rows + text, see `wit/plugin.wit`) and are checked completely
//! before the first one is applied, so a bad edit leaves the batch untouched.

use std::borrow::Cow;

use crate::span::{Attribute, AttributeValue, Span, SpanStatus};

use super::bindings::types::Edits;
use http_autoinstrument_plugin_layout::{
    u32_at, u64_at, EDIT_ARG, EDIT_OP, EDIT_ROW, EDIT_SPAN, EDIT_TEXT, EDIT_VALUE, OP_DROP,
    OP_REMOVE_ATTRIBUTE, OP_RENAME, OP_SET_ATTRIBUTE, OP_SET_STATUS, STATUS_ERROR, STATUS_OK,
    STATUS_UNSET, TYPE_BOOL, TYPE_FLOAT, TYPE_INT, TYPE_STR,
};

#[derive(Clone, Copy, Debug)]
pub struct EditLimits {
    pub max_value_bytes: usize,
    pub max_key_bytes: usize,
    pub max_attributes_per_span: usize,
    /// Text (keys, values, names, status messages) a batch's edits may write, on average per
    /// span. The limits above bound one value and one span; this bounds what one batch can make
    /// the agent hold and export (128 attributes of 4 KiB on each of 512 spans would be 256 MiB).
    pub max_written_bytes_per_span: usize,
}

/// [`EditLimits::max_written_bytes_per_span`] of the agent: far above what enriching plugins
/// write (tens to hundreds of bytes per span).
pub const MAX_WRITTEN_BYTES_PER_SPAN: usize = 16 * 1024;

impl EditLimits {
    /// Most edits accepted for a batch of `spans` spans.
    pub fn max_edits(&self, spans: usize) -> usize {
        spans
            .saturating_mul(self.max_attributes_per_span + 8)
            .saturating_add(64)
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub dropped: usize,
    pub truncated: u64,
    pub rejected: u64,
    /// Spans that edits other than drops were applied to (the spans changed, not just their
    /// number), by index in the batch; a span's consecutive edits list it once.
    pub changed_spans: Vec<u32>,
}

/// One decoded edit row; strings borrow from the edits' text.
enum Edit<'a> {
    Drop,
    Rename(&'a str),
    SetAttribute(&'a str, Value<'a>),
    RemoveAttribute(&'a str),
    SetStatus(u8, &'a str),
}

enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// The string at (offset, length) stored at `row[at..at + 8]`, if it lies inside `text` on
/// character boundaries (`text` was validated as UTF-8 as a whole, once).
fn str_at<'a>(text: &'a str, row: &[u8], at: usize, i: usize) -> Result<&'a str, String> {
    let start = u32_at(row, at) as usize;
    let end = start.saturating_add(u32_at(row, at + 4) as usize);
    text.get(start..end).ok_or_else(|| {
        format!("edit {i}: string {start}..{end} is outside the edits' text or splits a character")
    })
}

#[inline(always)]
fn decode<'a>(text: &'a str, row: &[u8], i: usize) -> Result<Edit<'a>, String> {
    Ok(match row[EDIT_OP] {
        OP_DROP => Edit::Drop,
        OP_RENAME => Edit::Rename(str_at(text, row, EDIT_TEXT, i)?),
        OP_SET_ATTRIBUTE => {
            let value = match row[EDIT_ARG] {
                TYPE_STR => Value::Str(str_at(text, row, EDIT_VALUE, i)?),
                TYPE_INT => Value::Int(u64_at(row, EDIT_VALUE) as i64),
                TYPE_FLOAT => Value::Float(f64::from_bits(u64_at(row, EDIT_VALUE))),
                TYPE_BOOL => Value::Bool(u64_at(row, EDIT_VALUE) != 0),
                tag => return Err(format!("edit {i}: unknown value type {tag}")),
            };
            Edit::SetAttribute(str_at(text, row, EDIT_TEXT, i)?, value)
        }
        OP_REMOVE_ATTRIBUTE => Edit::RemoveAttribute(str_at(text, row, EDIT_TEXT, i)?),
        OP_SET_STATUS if row[EDIT_ARG] <= STATUS_ERROR => {
            Edit::SetStatus(row[EDIT_ARG], str_at(text, row, EDIT_TEXT, i)?)
        }
        OP_SET_STATUS => return Err(format!("edit {i}: unknown status {}", row[EDIT_ARG])),
        op => return Err(format!("edit {i}: unknown operation {op}")),
    })
}

/// Applies `edits` to `spans`, marking drops in `dropped` (same length as `spans`, all false
/// on entry). On error nothing has been applied.
pub fn apply(
    spans: &mut [Span],
    edits: &Edits,
    limits: &EditLimits,
    dropped: &mut [bool],
) -> Result<Applied, String> {
    if !edits.ops.len().is_multiple_of(EDIT_ROW) {
        return Err(format!(
            "edit table is {} bytes, not a multiple of {EDIT_ROW}",
            edits.ops.len()
        ));
    }
    let count = edits.ops.len() / EDIT_ROW;
    let max = limits.max_edits(spans.len());
    if count > max {
        return Err(format!(
            "returned {count} edits for a batch of {} spans (limit {max})",
            spans.len()
        ));
    }
    let text = std::str::from_utf8(&edits.text)
        .map_err(|e| format!("the edits' text is not UTF-8: {e}"))?;
    // Check everything first: on error nothing may have been applied.
    for (i, row) in edits.ops.chunks_exact(EDIT_ROW).enumerate() {
        let index = u32_at(row, EDIT_SPAN);
        if index as usize >= spans.len() {
            return Err(format!(
                "edit refers to span {index} of a batch of {} spans",
                spans.len()
            ));
        }
        decode(text, row, i)?;
    }
    let mut applied = Applied::default();
    let mut writable = spans
        .len()
        .saturating_mul(limits.max_written_bytes_per_span);
    // Takes `bytes` from what the batch may still write; false (and counted as rejected) when
    // they do not fit.
    let mut write = |bytes: usize, applied: &mut Applied| {
        if bytes > writable {
            applied.rejected += 1;
            return false;
        }
        writable -= bytes;
        true
    };
    for (i, row) in edits.ops.chunks_exact(EDIT_ROW).enumerate() {
        let index = u32_at(row, EDIT_SPAN) as usize;
        let span = &mut spans[index];
        let edit = decode(text, row, i)?;
        if !matches!(edit, Edit::Drop) && applied.changed_spans.last() != Some(&(index as u32)) {
            applied.changed_spans.push(index as u32);
        }
        match edit {
            Edit::Drop => {
                if !dropped[index] {
                    dropped[index] = true;
                    applied.dropped += 1;
                }
            }
            Edit::Rename(name) => {
                let name = truncate(name, limits, &mut applied);
                if write(name.len(), &mut applied) {
                    set_text(&mut span.name, name);
                }
            }
            Edit::SetAttribute(key, value) => {
                if key.is_empty() || key.len() > limits.max_key_bytes {
                    applied.rejected += 1;
                    continue;
                }
                let full = span.attributes.len() >= limits.max_attributes_per_span;
                let existing = span.attributes.iter_mut().find(|a| a.key == key);
                if existing.is_none() && full {
                    applied.rejected += 1;
                    continue;
                }
                let value_bytes = match value {
                    Value::Str(s) => s.len().min(limits.max_value_bytes),
                    _ => 0,
                };
                let key_bytes = if existing.is_some() { 0 } else { key.len() };
                if !write(key_bytes + value_bytes, &mut applied) {
                    continue;
                }
                match existing {
                    Some(existing) => set_value(&mut existing.value, value, limits, &mut applied),
                    None => {
                        // A placeholder filled in place: an attribute built first and then
                        // pushed is copied with a store-forwarding stall (see `push_attribute`).
                        span.attributes.push(Attribute {
                            key: Cow::Borrowed(""),
                            value: AttributeValue::Bool(false),
                        });
                        if let Some(slot) = span.attributes.last_mut() {
                            slot.key = new_key(key);
                            set_value(&mut slot.value, value, limits, &mut applied);
                        }
                    }
                }
            }
            Edit::RemoveAttribute(key) => {
                span.remove_attribute(key);
            }
            Edit::SetStatus(code, message) => {
                span.status = match code {
                    STATUS_UNSET => SpanStatus::Unset,
                    STATUS_OK => SpanStatus::Ok,
                    _ => {
                        let message = truncate(message, limits, &mut applied);
                        if !write(message.len(), &mut applied) {
                            continue;
                        }
                        SpanStatus::Error {
                            description: message.to_owned(),
                        }
                    }
                }
            }
        }
    }
    Ok(applied)
}

/// Stores `value` in `slot`, reusing the slot's string buffer when both are strings.
fn set_value(
    slot: &mut AttributeValue,
    value: Value<'_>,
    limits: &EditLimits,
    applied: &mut Applied,
) {
    *slot = match value {
        Value::Str(s) => {
            let s = truncate(s, limits, applied);
            if let AttributeValue::Str(old) = slot {
                set_text(old, s);
                return;
            }
            AttributeValue::Str(Cow::Owned(s.to_owned()))
        }
        Value::Int(i) => AttributeValue::Int(i),
        Value::Float(f) => AttributeValue::Float(f),
        Value::Bool(b) => AttributeValue::Bool(b),
    };
}

/// The HTTP semantic-convention keys the agent's spans use, `http.route` (which plugins add
/// most, for requests no router matched) first.
const KNOWN_KEYS: &[&str] = &[
    "http.route",
    "http.request.method",
    "http.response.status_code",
    "url.path",
    "url.query",
    "url.scheme",
    "url.full",
    "server.address",
    "server.port",
    "client.address",
    "client.port",
    "user_agent.original",
    "network.protocol.version",
    "error.type",
    "http.request.body.size",
    "http.response.body.size",
];

/// A key a plugin adds: a well-known one as the constant, so the span holds no copy of it, the
/// next plugin's batch writes it once per batch, and the export hands it over without one.
#[inline(always)]
fn new_key(key: &str) -> Cow<'static, str> {
    match KNOWN_KEYS.iter().find(|known| **known == key) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(key.to_owned()),
    }
}

/// Stores `s` in `slot`, in the slot's own buffer if it has one (a constant has none).
fn set_text(slot: &mut Cow<'static, str>, s: &str) {
    match slot {
        Cow::Owned(old) => {
            old.clear();
            old.push_str(s);
        }
        Cow::Borrowed(_) => *slot = Cow::Owned(s.to_owned()),
    }
}

/// Cuts `s` to the value limit at a character boundary.
fn truncate<'a>(s: &'a str, limits: &EditLimits, applied: &mut Applied) -> &'a str {
    if s.len() <= limits.max_value_bytes {
        return s;
    }
    let mut end = limits.max_value_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    applied.truncated += 1;
    &s[..end]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::span::{Resource, SpanKind};

    const LIMITS: EditLimits = EditLimits {
        max_value_bytes: 8,
        max_key_bytes: 4,
        max_attributes_per_span: 2,
        max_written_bytes_per_span: 64,
    };

    fn spans(n: usize) -> Vec<Span> {
        (0..n)
            .map(|i| Span {
                trace_id: [0; 16],
                span_id: [i as u8; 8],
                parent_span_id: None,
                name: "GET".into(),
                kind: SpanKind::Server,
                start_unix_nanos: 0,
                end_unix_nanos: 1,
                status: SpanStatus::Unset,
                attributes: vec![],
                resource: Arc::new(Resource::default()),
            })
            .collect()
    }

    /// Builds packed edits the way a guest does.
    struct Builder(Edits);

    impl Builder {
        fn new() -> Self {
            Builder(Edits {
                ops: Vec::new(),
                text: Vec::new(),
            })
        }

        fn text(&mut self, s: &str) -> [u8; 8] {
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(&(self.0.text.len() as u32).to_le_bytes());
            b[4..].copy_from_slice(&(s.len() as u32).to_le_bytes());
            self.0.text.extend_from_slice(s.as_bytes());
            b
        }

        fn row(&mut self, span: u32, op: u8, tag: u8, a: [u8; 8], payload: [u8; 8]) -> &mut Self {
            let mut row = [0u8; EDIT_ROW];
            row[EDIT_SPAN..EDIT_SPAN + 4].copy_from_slice(&span.to_le_bytes());
            row[EDIT_OP] = op;
            row[EDIT_ARG] = tag;
            row[EDIT_TEXT..EDIT_TEXT + 8].copy_from_slice(&a);
            row[EDIT_VALUE..EDIT_VALUE + 8].copy_from_slice(&payload);
            self.0.ops.extend_from_slice(&row);
            self
        }

        fn set(&mut self, span: u32, key: &str, value: &str) -> &mut Self {
            let k = self.text(key);
            let v = self.text(value);
            self.row(span, OP_SET_ATTRIBUTE, TYPE_STR, k, v)
        }

        fn set_int(&mut self, span: u32, key: &str, value: i64) -> &mut Self {
            let k = self.text(key);
            self.row(span, OP_SET_ATTRIBUTE, TYPE_INT, k, value.to_le_bytes())
        }

        fn rename(&mut self, span: u32, name: &str) -> &mut Self {
            let n = self.text(name);
            self.row(span, OP_RENAME, 0, n, [0; 8])
        }

        fn status(&mut self, span: u32, code: u8, message: &str) -> &mut Self {
            let m = self.text(message);
            self.row(span, OP_SET_STATUS, code, m, [0; 8])
        }

        fn drop(&mut self, span: u32) -> &mut Self {
            self.row(span, OP_DROP, 0, [0; 8], [0; 8])
        }
    }

    #[test]
    fn applies_in_order_and_truncates_at_char_boundaries() {
        let mut s = spans(2);
        let mut dropped = vec![false; 2];
        let mut b = Builder::new();
        b.set(0, "a", "1")
            .set(0, "a", "ééééé")
            .set_int(0, "b", 7)
            .rename(1, "first")
            .rename(1, "0123456789")
            .status(1, 2, "bad")
            .drop(1)
            .drop(1);
        let applied = apply(&mut s, &b.0, &LIMITS, &mut dropped).unwrap();
        assert_eq!(
            applied,
            Applied {
                dropped: 1,
                truncated: 2,
                rejected: 0,
                changed_spans: vec![0, 1],
            }
        );
        assert_eq!(s[0].attribute("a"), Some(&AttributeValue::from("éééé")));
        assert_eq!(s[0].attribute("b"), Some(&AttributeValue::Int(7)));
        assert_eq!(s[1].name, "01234567");
        assert_eq!(
            s[1].status,
            SpanStatus::Error {
                description: "bad".into()
            }
        );
        assert_eq!(dropped, [false, true]);
    }

    #[test]
    fn drops_alone_do_not_count_as_changes() {
        let mut s = spans(2);
        let mut b = Builder::new();
        b.drop(0);
        let applied = apply(&mut s, &b.0, &LIMITS, &mut [false, false]).unwrap();
        assert_eq!((applied.dropped, applied.changed_spans.len()), (1, 0));
    }

    #[test]
    fn rejects_long_keys_and_attributes_beyond_the_cap() {
        let mut s = spans(1);
        let mut b = Builder::new();
        b.set(0, "toolong", "x")
            .set(0, "", "x")
            .set(0, "a", "1")
            .set(0, "b", "2")
            .set(0, "c", "3")
            .set(0, "a", "4");
        let applied = apply(&mut s, &b.0, &LIMITS, &mut [false]).unwrap();
        assert_eq!(applied.rejected, 3);
        assert_eq!(s[0].attributes.len(), 2);
        assert_eq!(s[0].attribute("a"), Some(&AttributeValue::from("4")));
    }

    #[test]
    fn a_well_known_key_a_plugin_adds_is_the_constant_and_any_other_a_copy() {
        let mut s = spans(1);
        let mut b = Builder::new();
        b.set(0, "http.route", "/users/{id}")
            .set(0, "url.path", "/users/7")
            .set(0, "app.tenant", "blue");
        let limits = EditLimits {
            max_value_bytes: 64,
            max_key_bytes: 64,
            max_attributes_per_span: 8,
            max_written_bytes_per_span: 1024,
        };
        apply(&mut s, &b.0, &limits, &mut [false]).unwrap();
        let keys: Vec<(&str, bool)> = s[0]
            .attributes
            .iter()
            .map(|a| (a.key.as_ref(), matches!(a.key, Cow::Borrowed(_))))
            .collect();
        assert_eq!(
            keys,
            [
                ("http.route", true),
                ("url.path", true),
                ("app.tenant", false)
            ]
        );
        assert_eq!(
            s[0].attribute("http.route"),
            Some(&AttributeValue::from("/users/{id}"))
        );
    }

    #[test]
    fn a_batch_writes_at_most_its_share_of_text() {
        let mut s = spans(2);
        let limits = EditLimits {
            max_written_bytes_per_span: 10,
            ..LIMITS
        };
        let mut b = Builder::new();
        // 20 bytes for the batch, on any of its spans: 9 + 9, not 6 more, 2 more, then nothing.
        b.set(0, "a", "12345678")
            .set(0, "b", "12345678")
            .rename(1, "GET /x")
            .set(1, "c", "1")
            .status(1, 2, "bad")
            .set_int(1, "d", 7)
            .drop(1);
        let applied = apply(&mut s, &b.0, &limits, &mut [false, false]).unwrap();
        assert_eq!((applied.rejected, applied.dropped), (3, 1), "{applied:?}");
        assert_eq!(s[0].attributes.len(), 2);
        assert_eq!(s[1].name, "GET");
        assert_eq!(s[1].attribute("c"), Some(&AttributeValue::from("1")));
        assert_eq!(s[1].status, SpanStatus::Unset);
        assert_eq!(s[1].attribute("d"), None, "its key is text too");
    }

    #[test]
    fn an_edit_outside_the_batch_or_too_many_edits_fail_without_applying_anything() {
        let mut s = spans(1);
        let mut b = Builder::new();
        b.set(0, "a", "1").drop(3);
        let err = apply(&mut s, &b.0, &LIMITS, &mut [false]).unwrap_err();
        assert!(err.contains("span 3 of a batch of 1"), "{err}");
        assert!(s[0].attributes.is_empty());
        let mut b = Builder::new();
        for _ in 0..1000 {
            b.set(0, "a", "1");
        }
        let err = apply(&mut s, &b.0, &LIMITS, &mut [false]).unwrap_err();
        assert!(err.contains("1000 edits"), "{err}");
    }

    #[test]
    fn malformed_edits_fail_without_applying_anything() {
        type Case = (Box<dyn Fn(&mut Builder)>, &'static str);
        let cases: Vec<Case> = vec![
            (
                Box::new(|b: &mut Builder| {
                    b.0.ops.pop();
                }),
                "not a multiple",
            ),
            (
                Box::new(|b: &mut Builder| {
                    b.row(0, 9, 0, [0; 8], [0; 8]);
                }),
                "unknown operation 9",
            ),
            (
                Box::new(|b: &mut Builder| {
                    b.row(0, OP_SET_ATTRIBUTE, 7, [0; 8], [0; 8]);
                }),
                "unknown value type 7",
            ),
            (
                Box::new(|b: &mut Builder| {
                    b.row(0, OP_SET_STATUS, 3, [0; 8], [0; 8]);
                }),
                "unknown status 3",
            ),
            (
                Box::new(|b: &mut Builder| {
                    let mut r = [0u8; 8];
                    r[4..].copy_from_slice(&1000u32.to_le_bytes());
                    b.row(0, OP_RENAME, 0, r, [0; 8]);
                }),
                "outside the edits' text",
            ),
            (
                Box::new(|b: &mut Builder| {
                    let t = b.text("é");
                    let mut r = t;
                    r[4..].copy_from_slice(&1u32.to_le_bytes());
                    b.row(0, OP_RENAME, 0, r, [0; 8]);
                }),
                "splits a character",
            ),
            (
                Box::new(|b: &mut Builder| {
                    b.0.text.push(0xff);
                }),
                "not UTF-8",
            ),
        ];
        for (make, expected) in cases {
            let mut s = spans(1);
            let mut b = Builder::new();
            b.set(0, "a", "1");
            make(&mut b);
            let err = apply(&mut s, &b.0, &LIMITS, &mut [false]).unwrap_err();
            assert!(err.contains(expected), "{err} does not say {expected}");
            assert!(s[0].attributes.is_empty(), "nothing applied for {expected}");
        }
    }
}
