//! The changes a plugin makes to a batch.

use crate::batch::SpanRef;
use crate::bindings::http_autoinstrument::plugin::types::{
    Edit, RemoveAttribute, Rename, SetAttribute, SetStatus, StatusCode,
};

pub use crate::bindings::http_autoinstrument::plugin::types::NewValue;

/// Changes to a batch, applied by the host in order after `process` returns.
#[derive(Default)]
pub struct Edits {
    list: Vec<Edit>,
}

impl Edits {
    pub fn new() -> Self {
        Edits::default()
    }

    pub fn drop(&mut self, span: &SpanRef<'_>) {
        self.list.push(Edit::Drop(span.index()));
    }

    pub fn rename(&mut self, span: &SpanRef<'_>, name: impl Into<String>) {
        self.list.push(Edit::Rename(Rename {
            span: span.index(),
            name: name.into(),
        }));
    }

    /// Sets `key`, replacing an existing value of the same key.
    pub fn set_attribute(
        &mut self,
        span: &SpanRef<'_>,
        key: impl Into<String>,
        value: impl Into<NewValue>,
    ) {
        self.list.push(Edit::SetAttribute(SetAttribute {
            span: span.index(),
            key: key.into(),
            value: value.into(),
        }));
    }

    pub fn remove_attribute(&mut self, span: &SpanRef<'_>, key: impl Into<String>) {
        self.list.push(Edit::RemoveAttribute(RemoveAttribute {
            span: span.index(),
            key: key.into(),
        }));
    }

    pub fn set_status(&mut self, span: &SpanRef<'_>, code: StatusCode, message: impl Into<String>) {
        self.list.push(Edit::SetStatus(SetStatus {
            span: span.index(),
            code,
            message: message.into(),
        }));
    }

    /// Adds an edit built by hand (the typed methods above cover the usual cases).
    pub fn push_raw(&mut self, edit: Edit) {
        self.list.push(edit);
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn as_slice(&self) -> &[Edit] {
        &self.list
    }

    pub fn into_vec(self) -> Vec<Edit> {
        self.list
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
