//! The agent's span: what capture produces, plugins transform and exporters send.
//!
//! Deliberately small and owned (no SDK types) so the plugin host can map it to WIT records and
//! the exporter to OTLP without going through a tracer.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// A value of a span or resource attribute (the OTLP scalar kinds the agent uses).
#[derive(Clone, Debug, PartialEq)]
pub enum AttributeValue {
    /// Borrowed for the agent's own constant values (`GET`, `https`, `1.1`: no allocation per
    /// span); owned for text from requests, plugins and configuration.
    Str(Cow<'static, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl fmt::Display for AttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttributeValue::Str(s) => write!(f, "{s:?}"),
            AttributeValue::Int(i) => write!(f, "{i}"),
            AttributeValue::Float(x) => write!(f, "{x}"),
            AttributeValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl From<&'static str> for AttributeValue {
    fn from(s: &'static str) -> Self {
        AttributeValue::Str(Cow::Borrowed(s))
    }
}
impl From<String> for AttributeValue {
    fn from(s: String) -> Self {
        AttributeValue::Str(Cow::Owned(s))
    }
}
impl From<Cow<'static, str>> for AttributeValue {
    fn from(s: Cow<'static, str>) -> Self {
        AttributeValue::Str(s)
    }
}
impl From<i64> for AttributeValue {
    fn from(i: i64) -> Self {
        AttributeValue::Int(i)
    }
}
impl From<bool> for AttributeValue {
    fn from(b: bool) -> Self {
        AttributeValue::Bool(b)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    /// Borrowed for the agent's own semconv keys (no allocation per span); owned for keys that
    /// come from plugins or configuration.
    pub key: Cow<'static, str>,
    pub value: AttributeValue,
}

impl Attribute {
    pub fn new(key: impl Into<Cow<'static, str>>, value: impl Into<AttributeValue>) -> Self {
        Attribute {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Appends the attribute `make` builds, written straight into `list`. `push` builds it on the
/// stack first and copies it over with 16-byte loads that straddle the 8-byte stores just made,
/// which the CPU cannot forward from its store buffer: one stall per attribute. Making room
/// before building avoids the copy.
#[inline(always)]
pub(crate) fn push_attribute(list: &mut Vec<Attribute>, make: impl FnOnce() -> Attribute) {
    list.reserve(1);
    let len = list.len();
    list.spare_capacity_mut()[0].write(make());
    // SAFETY: `reserve` made room for the slot at `len`, which was just initialised.
    unsafe { list.set_len(len + 1) };
}

/// The entity that produced spans: one traced process (service name, pid, executable, host).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resource {
    pub attributes: Vec<Attribute>,
}

impl Resource {
    pub fn get(&self, key: &str) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .find(|a| a.key == key)
            .map(|a| &a.value)
    }

    pub fn service_name(&self) -> &str {
        match self.get("service.name") {
            Some(AttributeValue::Str(s)) => s,
            _ => "unknown_service",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    Server,
    Client,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpanStatus {
    Unset,
    Ok,
    Error { description: String },
}

/// One finished span.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    /// Usually a constant (`GET`): the method alone names a request with no known route.
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub status: SpanStatus,
    pub attributes: Vec<Attribute>,
    /// Shared by every span of the same process.
    pub resource: Arc<Resource>,
}

impl Span {
    pub fn attribute(&self, key: &str) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .find(|a| a.key == key)
            .map(|a| &a.value)
    }

    /// Sets `key` to `value`, replacing an existing value of the same key.
    pub fn set_attribute(&mut self, key: &str, value: impl Into<AttributeValue>) {
        let value = value.into();
        match self.attributes.iter_mut().find(|a| a.key == key) {
            Some(existing) => existing.value = value,
            None => self.attributes.push(Attribute::new(key.to_owned(), value)),
        }
    }

    pub fn remove_attribute(&mut self, key: &str) -> Option<AttributeValue> {
        let index = self.attributes.iter().position(|a| a.key == key)?;
        Some(self.attributes.remove(index).value)
    }
}

#[cfg(test)]
impl Span {
    /// A minimal server span for unit tests: `GET`, no attributes, times 1..2.
    pub(crate) fn for_tests(resource: Arc<Resource>, span_id: [u8; 8]) -> Span {
        Span {
            trace_id: [1; 16],
            span_id,
            parent_span_id: None,
            name: "GET".into(),
            kind: SpanKind::Server,
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            status: SpanStatus::Unset,
            attributes: vec![],
            resource,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> Span {
        Span::for_tests(Arc::new(Resource::default()), [2; 8])
    }

    #[test]
    fn set_attribute_replaces_instead_of_duplicating() {
        let mut s = span();
        s.set_attribute("url.path", "/a");
        s.set_attribute("url.path", "/b");
        assert_eq!(s.attributes.len(), 1);
        assert_eq!(s.attribute("url.path"), Some(&AttributeValue::from("/b")));
        assert_eq!(
            s.remove_attribute("url.path"),
            Some(AttributeValue::from("/b"))
        );
        assert!(s.attributes.is_empty());
    }

    #[test]
    fn resource_without_service_name_says_unknown_service() {
        assert_eq!(Resource::default().service_name(), "unknown_service");
    }
}
