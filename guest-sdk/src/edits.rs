//! The changes a plugin makes to a batch, packed as the host reads them (fixed 24-byte rows
//! plus one text buffer; layout in `wit/plugin.wit`): recording an edit copies its strings
//! once and allocates nothing per edit.

use http_autoinstrument_plugin_layout::{
    u32_at, u64_at, EDIT_ARG, EDIT_OP, EDIT_ROW, EDIT_SPAN, EDIT_TEXT, EDIT_VALUE, OP_DROP,
    OP_REMOVE_ATTRIBUTE, OP_RENAME, OP_SET_ATTRIBUTE, OP_SET_STATUS, STATUS_ERROR, STATUS_OK,
    STATUS_UNSET, TYPE_BOOL as TAG_BOOL, TYPE_FLOAT as TAG_FLOAT, TYPE_INT as TAG_INT,
    TYPE_STR as TAG_STR,
};

use crate::batch::{same_bytes, SpanRef};
use crate::bindings::http_autoinstrument::plugin::types::Edits as RawEdits;
use crate::StatusCode;

/// An attribute value a plugin writes (owned form, see [`Edit`]).
#[derive(Clone, Debug, PartialEq)]
pub enum NewValue {
    Str(String),
    Int(i64),
    Float(f64),
    Boolean(bool),
}

/// One edit, decoded (for tests and tools; plugins use the [`Edits`] methods).
#[derive(Clone, Debug, PartialEq)]
pub enum Edit {
    Drop(u32),
    Rename {
        span: u32,
        name: String,
    },
    SetAttribute {
        span: u32,
        key: String,
        value: NewValue,
    },
    RemoveAttribute {
        span: u32,
        key: String,
    },
    SetStatus {
        span: u32,
        code: StatusCode,
        message: String,
    },
}

impl Edit {
    /// The index of the span the edit applies to.
    pub fn span(&self) -> u32 {
        match self {
            Edit::Drop(i) => *i,
            Edit::Rename { span, .. }
            | Edit::SetAttribute { span, .. }
            | Edit::RemoveAttribute { span, .. }
            | Edit::SetStatus { span, .. } => *span,
        }
    }
}

/// A value [`Edits::set_attribute`] accepts: strings (borrowed or owned), `i64`, `f64`,
/// `bool`, [`NewValue`] or a [`Value`](crate::Value) read from the batch.
pub trait IntoValue {
    #[doc(hidden)]
    fn write(self, edits: &mut Edits) -> (u8, [u8; 8]);
}

impl IntoValue for &str {
    #[inline(always)]
    fn write(self, edits: &mut Edits) -> (u8, [u8; 8]) {
        (TAG_STR, edits.push_text(self))
    }
}

impl IntoValue for &String {
    fn write(self, edits: &mut Edits) -> (u8, [u8; 8]) {
        self.as_str().write(edits)
    }
}

impl IntoValue for String {
    fn write(self, edits: &mut Edits) -> (u8, [u8; 8]) {
        self.as_str().write(edits)
    }
}

impl IntoValue for i64 {
    fn write(self, _: &mut Edits) -> (u8, [u8; 8]) {
        (TAG_INT, self.to_le_bytes())
    }
}

impl IntoValue for f64 {
    fn write(self, _: &mut Edits) -> (u8, [u8; 8]) {
        (TAG_FLOAT, self.to_bits().to_le_bytes())
    }
}

impl IntoValue for bool {
    fn write(self, _: &mut Edits) -> (u8, [u8; 8]) {
        (TAG_BOOL, u64::from(self).to_le_bytes())
    }
}

impl IntoValue for &NewValue {
    fn write(self, edits: &mut Edits) -> (u8, [u8; 8]) {
        match self {
            NewValue::Str(s) => s.as_str().write(edits),
            NewValue::Int(i) => i.write(edits),
            NewValue::Float(f) => f.write(edits),
            NewValue::Boolean(b) => b.write(edits),
        }
    }
}

impl IntoValue for NewValue {
    fn write(self, edits: &mut Edits) -> (u8, [u8; 8]) {
        (&self).write(edits)
    }
}

impl IntoValue for crate::Value<'_> {
    fn write(self, edits: &mut Edits) -> (u8, [u8; 8]) {
        match self {
            crate::Value::Str(s) => s.write(edits),
            crate::Value::Int(i) => i.write(edits),
            crate::Value::Float(f) => f.write(edits),
            crate::Value::Bool(b) => b.write(edits),
        }
    }
}

/// Changes to a batch, applied by the host in order after `process` returns.
#[derive(Default)]
pub struct Edits {
    ops: Vec<u8>,
    text: Vec<u8>,
    /// Where the key of the last `set_attribute` is in `text`: a plugin that sets the same key
    /// on every span (`http.route`) writes it once, not once per span (ranges may share bytes).
    last_key: [u8; 8],
}

impl Edits {
    pub fn new() -> Self {
        Edits::default()
    }

    /// Empty edits that can hold `ops` edit rows and `text` bytes of strings without
    /// reallocating.
    pub fn with_capacity(ops: usize, text: usize) -> Self {
        Edits {
            ops: Vec::with_capacity(ops * EDIT_ROW),
            text: Vec::with_capacity(text),
            last_key: [0; 8],
        }
    }

    // These helpers run per edit: inlined, they cost no call (a call in Wasm also pays the
    // host's time-limit check on entry).
    #[inline(always)]
    fn push_text(&mut self, s: &str) -> [u8; 8] {
        let mut r = [0u8; 8];
        r[..4].copy_from_slice(&(self.text.len() as u32).to_le_bytes());
        r[4..].copy_from_slice(&(s.len() as u32).to_le_bytes());
        self.text.extend_from_slice(s.as_bytes());
        r
    }

    /// The range of `key` in the text: the last key's when it is the same (compared by bytes,
    /// as a plugin may reuse one buffer for different keys), else a new copy.
    fn key_text(&mut self, key: &str) -> [u8; 8] {
        let start = u32_at(&self.last_key, 0) as usize;
        let last = self
            .text
            .get(start..start + u32_at(&self.last_key, 4) as usize);
        if last.is_some_and(|last| same_bytes(last, key.as_bytes())) {
            return self.last_key;
        }
        self.last_key = self.push_text(key);
        self.last_key
    }

    #[inline(always)]
    fn row(&mut self, span: u32, op: u8, tag: u8, text: [u8; 8], payload: [u8; 8]) {
        let mut row = [0u8; EDIT_ROW];
        row[EDIT_SPAN..EDIT_SPAN + 4].copy_from_slice(&span.to_le_bytes());
        row[EDIT_OP] = op;
        row[EDIT_ARG] = tag;
        row[EDIT_TEXT..EDIT_TEXT + 8].copy_from_slice(&text);
        row[EDIT_VALUE..EDIT_VALUE + 8].copy_from_slice(&payload);
        self.ops.extend_from_slice(&row);
    }

    #[inline(always)]
    fn text_row(&mut self, span: u32, op: u8, tag: u8, s: &str) {
        let t = self.push_text(s);
        self.row(span, op, tag, t, [0; 8]);
    }

    pub fn drop(&mut self, span: &SpanRef<'_>) {
        self.row(span.index(), OP_DROP, 0, [0; 8], [0; 8]);
    }

    pub fn rename(&mut self, span: &SpanRef<'_>, name: impl AsRef<str>) {
        self.text_row(span.index(), OP_RENAME, 0, name.as_ref());
    }

    /// Sets `key`, replacing an existing value of the same key.
    pub fn set_attribute(
        &mut self,
        span: &SpanRef<'_>,
        key: impl AsRef<str>,
        value: impl IntoValue,
    ) {
        let key = self.key_text(key.as_ref());
        let (tag, payload) = value.write(self);
        self.row(span.index(), OP_SET_ATTRIBUTE, tag, key, payload);
    }

    pub fn remove_attribute(&mut self, span: &SpanRef<'_>, key: impl AsRef<str>) {
        self.text_row(span.index(), OP_REMOVE_ATTRIBUTE, 0, key.as_ref());
    }

    pub fn set_status(&mut self, span: &SpanRef<'_>, code: StatusCode, message: impl AsRef<str>) {
        self.text_row(
            span.index(),
            OP_SET_STATUS,
            status_code(code),
            message.as_ref(),
        );
    }

    /// Adds an edit built by hand, e.g. one whose span index is not from the batch (the typed
    /// methods above cover the usual cases).
    pub fn push_raw(&mut self, edit: Edit) {
        match edit {
            Edit::Drop(i) => self.row(i, OP_DROP, 0, [0; 8], [0; 8]),
            Edit::Rename { span, name } => self.text_row(span, OP_RENAME, 0, &name),
            Edit::SetAttribute { span, key, value } => {
                let key = self.push_text(&key);
                let (tag, payload) = value.write(self);
                self.row(span, OP_SET_ATTRIBUTE, tag, key, payload);
            }
            Edit::RemoveAttribute { span, key } => {
                self.text_row(span, OP_REMOVE_ATTRIBUTE, 0, &key)
            }
            Edit::SetStatus {
                span,
                code,
                message,
            } => self.text_row(span, OP_SET_STATUS, status_code(code), &message),
        }
    }

    pub fn len(&self) -> usize {
        self.ops.len() / EDIT_ROW
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Bytes of strings recorded so far.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// The edits recorded so far, decoded, in order.
    pub fn to_vec(&self) -> Vec<Edit> {
        let text = |row: &[u8], at: usize| {
            let start = u32_at(row, at) as usize;
            let len = u32_at(row, at + 4) as usize;
            String::from_utf8_lossy(&self.text[start..start + len]).into_owned()
        };
        self.ops
            .chunks_exact(EDIT_ROW)
            .map(|row| {
                let span = u32_at(row, EDIT_SPAN);
                match row[EDIT_OP] {
                    OP_DROP => Edit::Drop(span),
                    OP_RENAME => Edit::Rename {
                        span,
                        name: text(row, EDIT_TEXT),
                    },
                    OP_SET_ATTRIBUTE => {
                        let payload = u64_at(row, EDIT_VALUE);
                        let value = match row[EDIT_ARG] {
                            TAG_STR => NewValue::Str(text(row, EDIT_VALUE)),
                            TAG_INT => NewValue::Int(payload as i64),
                            TAG_FLOAT => NewValue::Float(f64::from_bits(payload)),
                            _ => NewValue::Boolean(payload != 0),
                        };
                        Edit::SetAttribute {
                            span,
                            key: text(row, EDIT_TEXT),
                            value,
                        }
                    }
                    OP_REMOVE_ATTRIBUTE => Edit::RemoveAttribute {
                        span,
                        key: text(row, EDIT_TEXT),
                    },
                    _ => Edit::SetStatus {
                        span,
                        code: match row[EDIT_ARG] {
                            STATUS_OK => StatusCode::Ok,
                            STATUS_ERROR => StatusCode::Error,
                            _ => StatusCode::Unset,
                        },
                        message: text(row, EDIT_TEXT),
                    },
                }
            })
            .collect()
    }

    /// The packed form the host receives.
    pub fn into_raw(self) -> RawEdits {
        RawEdits {
            ops: self.ops,
            text: self.text,
        }
    }
}

fn status_code(code: StatusCode) -> u8 {
    match code {
        StatusCode::Unset => STATUS_UNSET,
        StatusCode::Ok => STATUS_OK,
        StatusCode::Error => STATUS_ERROR,
    }
}

impl From<&str> for NewValue {
    fn from(s: &str) -> Self {
        NewValue::Str(s.to_owned())
    }
}

impl From<String> for NewValue {
    fn from(s: String) -> Self {
        NewValue::Str(s)
    }
}

impl From<i64> for NewValue {
    fn from(i: i64) -> Self {
        NewValue::Int(i)
    }
}

impl From<f64> for NewValue {
    fn from(f: f64) -> Self {
        NewValue::Float(f)
    }
}

impl From<bool> for NewValue {
    fn from(b: bool) -> Self {
        NewValue::Boolean(b)
    }
}
