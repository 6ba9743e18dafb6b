//! Read-only views over the packed batch the host sends (row layouts in `wit/plugin.wit`).
//! Nothing is decoded up front: a field is read from its row when a plugin asks for it.

use http_autoinstrument_plugin_layout::{
    u32_at, u64_at, ATTRIBUTE_KEY, ATTRIBUTE_ROW, ATTRIBUTE_TYPE, ATTRIBUTE_VALUE, KIND_CLIENT,
    RESOURCE_ATTRIBUTES, RESOURCE_ROW, SPAN_ATTRIBUTES, SPAN_END, SPAN_HAS_PARENT, SPAN_KIND,
    SPAN_NAME, SPAN_PARENT_SPAN_ID, SPAN_RESOURCE, SPAN_ROW, SPAN_SPAN_ID, SPAN_START, SPAN_STATUS,
    SPAN_STATUS_MESSAGE, SPAN_TRACE_ID_HIGH, SPAN_TRACE_ID_LOW, STATUS_ERROR, STATUS_OK, TYPE_BOOL,
    TYPE_FLOAT, TYPE_INT, TYPE_STR,
};

use crate::bindings::http_autoinstrument::plugin::types::SpanBatch;
use crate::{SpanKind, StatusCode};

/// A batch of spans as the host sent it. Strings are borrowed from one shared buffer.
pub struct Batch {
    raw: SpanBatch,
    /// What is known of `raw.text`, so that reading a string checks only the rest.
    text: TextIs,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TextIs {
    /// Packed by the agent from Rust strings: UTF-8, and every range it sends is a whole string.
    HostStrings,
    /// Valid UTF-8 as a whole (checked once per batch): a range must still lie on character
    /// boundaries.
    Utf8,
    /// Not UTF-8: a string is checked when it is read.
    Unchecked,
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

/// `a == b`, eight bytes at a time where both are at least eight long (the last eight compared
/// overlapping the word before): keys are mostly 8 to 25 bytes, and Wasm's `memcmp`, which `==`
/// calls, compares them a byte at a time.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a == b;
    }
    let mut at = 0;
    while at + 8 < n {
        if u64_at(a, at) != u64_at(b, at) {
            return false;
        }
        at += 8;
    }
    u64_at(a, n - 8) == u64_at(b, n - 8)
}

impl Batch {
    /// A batch from anywhere (tests, tools): its text is checked once, here.
    pub fn from_raw(raw: SpanBatch) -> Self {
        let text = match std::str::from_utf8(&raw.text) {
            Ok(_) => TextIs::Utf8,
            Err(_) => TextIs::Unchecked,
        };
        Batch { raw, text }
    }

    /// A batch as `process` received it from the agent, which packs `text` from Rust strings:
    /// UTF-8 by construction and every range a whole string, as `wit/plugin.wit` promises. Not
    /// checked again in release builds, the same trust wit-bindgen gives a `string` the host
    /// lowered (its `string_lift`). Checking the text again would cost every plugin a sizeable
    /// share of a batch that edits nothing (`alone-test-faults` in bench/benches/plugins.rs).
    pub(crate) fn from_host(raw: SpanBatch) -> Self {
        debug_assert!(
            std::str::from_utf8(&raw.text).is_ok(),
            "the host sent text that is not UTF-8"
        );
        Batch {
            raw,
            text: TextIs::HostStrings,
        }
    }

    /// Gives the buffers back (the SDK reuses their allocations for the next batch).
    pub fn into_raw(self) -> SpanBatch {
        self.raw
    }

    pub fn len(&self) -> usize {
        self.raw.spans.len() / SPAN_ROW
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn spans(&self) -> impl ExactSizeIterator<Item = SpanRef<'_>> {
        self.raw
            .spans
            .chunks_exact(SPAN_ROW)
            .enumerate()
            .map(move |(i, row)| SpanRef {
                batch: self,
                index: i as u32,
                row,
            })
    }

    pub fn span(&self, index: usize) -> Option<SpanRef<'_>> {
        let row = self
            .raw
            .spans
            .get(index.checked_mul(SPAN_ROW)?..)?
            .get(..SPAN_ROW)?;
        Some(SpanRef {
            batch: self,
            index: index as u32,
            row,
        })
    }

    /// The bytes at (offset, length) stored at `row[at..at + 8]`; empty if out of bounds.
    #[inline(always)]
    fn bytes(&self, row: &[u8], at: usize) -> &[u8] {
        let start = u32_at(row, at) as usize;
        let end = start.saturating_add(u32_at(row, at + 4) as usize);
        self.raw.text.get(start..end).unwrap_or(&[])
    }

    /// The string at (offset, length) stored at `row[at..at + 8]`; empty if the range is out
    /// of bounds or not UTF-8 (the host never sends either, but a plugin must not panic on
    /// them).
    #[inline(always)]
    fn text(&self, row: &[u8], at: usize) -> &str {
        match self.text {
            // SAFETY: the agent's ranges are whole strings of UTF-8 text (see `from_host`).
            TextIs::HostStrings => unsafe { std::str::from_utf8_unchecked(self.bytes(row, at)) },
            TextIs::Utf8 => {
                let start = u32_at(row, at) as usize;
                let end = start.saturating_add(u32_at(row, at + 4) as usize);
                // SAFETY: checked to be UTF-8 as a whole in `from_raw`; `str::get` below only
                // returns ranges on character boundaries, so the slice is UTF-8 too.
                let text = unsafe { std::str::from_utf8_unchecked(&self.raw.text) };
                text.get(start..end).unwrap_or("")
            }
            TextIs::Unchecked => std::str::from_utf8(self.bytes(row, at)).unwrap_or(""),
        }
    }

    /// The `count` attribute rows from row `first`, as one slice; empty if out of bounds.
    fn attribute_table(&self, first: u32, count: u32) -> &[u8] {
        let start = (first as usize).saturating_mul(ATTRIBUTE_ROW);
        let end = start.saturating_add((count as usize).saturating_mul(ATTRIBUTE_ROW));
        self.raw.attributes.get(start..end).unwrap_or(&[])
    }

    fn attribute_rows(&self, first: u32, count: u32) -> std::slice::ChunksExact<'_, u8> {
        self.attribute_table(first, count)
            .chunks_exact(ATTRIBUTE_ROW)
    }

    // Inlined: a call returns the value through the Wasm stack in memory, which cost more than
    // reading it.
    #[inline(always)]
    fn value<'a>(&'a self, row: &[u8]) -> Value<'a> {
        let payload = u64_at(row, ATTRIBUTE_VALUE);
        match row[ATTRIBUTE_TYPE] {
            TYPE_STR => Value::Str(self.text(row, ATTRIBUTE_VALUE)),
            TYPE_INT => Value::Int(payload as i64),
            TYPE_FLOAT => Value::Float(f64::from_bits(payload)),
            TYPE_BOOL => Value::Bool(payload != 0),
            // Unknown to this SDK version: read as an empty string rather than fail.
            _ => Value::Str(""),
        }
    }

    fn attributes(&self, first: u32, count: u32) -> impl Iterator<Item = (&str, Value<'_>)> {
        self.attribute_rows(first, count)
            .map(move |row| (self.text(row, ATTRIBUTE_KEY), self.value(row)))
    }

    fn text_attributes(&self, first: u32, count: u32) -> impl Iterator<Item = (&str, &str)> {
        self.attribute_rows(first, count)
            .filter(|row| row[ATTRIBUTE_TYPE] == TYPE_STR)
            .map(move |row| {
                (
                    self.text(row, ATTRIBUTE_KEY),
                    self.text(row, ATTRIBUTE_VALUE),
                )
            })
    }

    fn find(&self, first: u32, count: u32, key: &str) -> Option<Value<'_>> {
        let [value] = self.find_each(first, count, [key]);
        value
    }

    /// Finds each of `keys` in one pass over the rows: a span that lacks one of them
    /// (`http.route` of an unrouted request) costs one walk through its attributes, not one per
    /// key looked up. Each key gets the first row that has it. Keys are compared as raw bytes,
    /// so only a row whose key has the length of one sought has its string checked: most rows
    /// differ in length.
    #[inline(always)]
    fn find_each<const N: usize>(
        &self,
        first: u32,
        count: u32,
        keys: [&str; N],
    ) -> [Option<Value<'_>>; N] {
        // Rows are found first and read after the walk: the loop then keeps N row numbers,
        // which the compiler holds in registers, rather than N values in memory.
        const NONE: usize = usize::MAX;
        let table = self.attribute_table(first, count);
        let mut found = [NONE; N];
        let mut missing = N;
        for (at, row) in table.chunks_exact(ATTRIBUTE_ROW).enumerate() {
            let len = u32_at(row, ATTRIBUTE_KEY + 4) as usize;
            for k in 0..N {
                if found[k] == NONE
                    && keys[k].len() == len
                    && same_bytes(self.bytes(row, ATTRIBUTE_KEY), keys[k].as_bytes())
                {
                    found[k] = at;
                    missing -= 1;
                }
            }
            if missing == 0 {
                break;
            }
        }
        found.map(|at| {
            table
                .get(at.saturating_mul(ATTRIBUTE_ROW)..)
                .and_then(|rest| rest.get(..ATTRIBUTE_ROW))
                .map(|row| self.value(row))
        })
    }
}

/// One span of a [`Batch`].
#[derive(Clone, Copy)]
pub struct SpanRef<'a> {
    batch: &'a Batch,
    index: u32,
    row: &'a [u8],
}

impl<'a> SpanRef<'a> {
    /// Position in the batch; what edits refer to.
    pub fn index(&self) -> u32 {
        self.index
    }

    #[inline(always)]
    pub fn name(&self) -> &'a str {
        self.batch.text(self.row, SPAN_NAME)
    }

    pub fn kind(&self) -> SpanKind {
        match self.row[SPAN_KIND] {
            KIND_CLIENT => SpanKind::Client,
            _ => SpanKind::Server,
        }
    }

    pub fn start_unix_nanos(&self) -> u64 {
        u64_at(self.row, SPAN_START)
    }

    pub fn end_unix_nanos(&self) -> u64 {
        u64_at(self.row, SPAN_END)
    }

    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos()
            .saturating_sub(self.start_unix_nanos())
    }

    pub fn status(&self) -> StatusCode {
        match self.row[SPAN_STATUS] {
            STATUS_OK => StatusCode::Ok,
            STATUS_ERROR => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }

    pub fn status_message(&self) -> &'a str {
        self.batch.text(self.row, SPAN_STATUS_MESSAGE)
    }

    pub fn trace_id(&self) -> u128 {
        (u128::from(u64_at(self.row, SPAN_TRACE_ID_HIGH)) << 64)
            | u128::from(u64_at(self.row, SPAN_TRACE_ID_LOW))
    }

    pub fn span_id(&self) -> u64 {
        u64_at(self.row, SPAN_SPAN_ID)
    }

    pub fn parent_span_id(&self) -> Option<u64> {
        (self.row[SPAN_HAS_PARENT] != 0).then(|| u64_at(self.row, SPAN_PARENT_SPAN_ID))
    }

    /// Every attribute of the span, in order.
    pub fn attributes(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + 'a {
        self.batch.attributes(
            u32_at(self.row, SPAN_ATTRIBUTES),
            u32_at(self.row, SPAN_ATTRIBUTES + 4),
        )
    }

    /// The attributes whose values are text, as (key, text), in order: what a plugin that scans
    /// text (redaction, PII checks) visits. Cheaper than [`attributes`](Self::attributes) and a
    /// match, which decodes every value of every type.
    ///
    /// ```
    /// # use http_autoinstrument_plugin::testing::{pack, TestSpan};
    /// # use http_autoinstrument_plugin::Batch;
    /// # let batch = Batch::from_raw(pack(&[TestSpan::new("GET")
    /// #     .attr("url.path", "/a").attr("http.response.status_code", 200i64)]));
    /// # let span = batch.span(0).unwrap();
    /// let texts: Vec<_> = span.text_attributes().collect();
    /// assert_eq!(texts, [("url.path", "/a")]);
    /// ```
    pub fn text_attributes(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.batch.text_attributes(
            u32_at(self.row, SPAN_ATTRIBUTES),
            u32_at(self.row, SPAN_ATTRIBUTES + 4),
        )
    }

    pub fn attribute(&self, key: &str) -> Option<Value<'a>> {
        self.batch.find(
            u32_at(self.row, SPAN_ATTRIBUTES),
            u32_at(self.row, SPAN_ATTRIBUTES + 4),
            key,
        )
    }

    /// The values of several attributes, found in one pass over the span's attributes: cheaper
    /// than one [`attribute`](Self::attribute) call per key when the span may lack some of
    /// them, each of which is otherwise a walk through every attribute.
    ///
    /// ```
    /// # use http_autoinstrument_plugin::testing::{pack, TestSpan};
    /// # use http_autoinstrument_plugin::{Batch, Value};
    /// # let batch = Batch::from_raw(pack(&[TestSpan::new("GET").attr("url.path", "/a")]));
    /// # let span = batch.span(0).unwrap();
    /// let [route, path] = span.attributes_of(["http.route", "url.path"]);
    /// assert_eq!((route, path), (None, Some(Value::Str("/a"))));
    /// ```
    pub fn attributes_of<const N: usize>(&self, keys: [&str; N]) -> [Option<Value<'a>>; N] {
        self.batch.find_each(
            u32_at(self.row, SPAN_ATTRIBUTES),
            u32_at(self.row, SPAN_ATTRIBUTES + 4),
            keys,
        )
    }

    /// The attribute's value if it is a string.
    pub fn str_attribute(&self, key: &str) -> Option<&'a str> {
        self.attribute(key).and_then(|v| v.as_str())
    }

    pub fn int_attribute(&self, key: &str) -> Option<i64> {
        self.attribute(key).and_then(|v| v.as_int())
    }

    fn resource_range(&self) -> (u32, u32) {
        let at = (u32_at(self.row, SPAN_RESOURCE) as usize).saturating_mul(RESOURCE_ROW);
        match self
            .batch
            .raw
            .resources
            .get(at..at.saturating_add(RESOURCE_ROW))
        {
            Some(row) => (
                u32_at(row, RESOURCE_ATTRIBUTES),
                u32_at(row, RESOURCE_ATTRIBUTES + 4),
            ),
            None => (0, 0),
        }
    }

    /// Attributes of the process that produced the span (`service.name`, ...).
    pub fn resource_attributes(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + 'a {
        let (first, count) = self.resource_range();
        self.batch.attributes(first, count)
    }

    pub fn resource_attribute(&self, key: &str) -> Option<Value<'a>> {
        let (first, count) = self.resource_range();
        self.batch.find(first, count, key)
    }
}

#[cfg(test)]
mod tests {
    use super::same_bytes;

    #[test]
    fn same_bytes_is_equality_at_every_length_and_position_of_a_difference() {
        for n in 0..=33usize {
            let a: Vec<u8> = (0..n as u8).map(|i| b'a' + i % 26).collect();
            assert!(same_bytes(&a, &a.clone()), "length {n}");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x01;
                assert!(!same_bytes(&a, &b), "length {n}, difference at {at}");
            }
            assert!(!same_bytes(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }
}
