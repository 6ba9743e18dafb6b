//! Packs spans into the WIT `span-batch`: fixed-size little-endian rows plus one text buffer
//! (layouts in `wit/plugin.wit`). Each table crosses into the guest as a `list<u8>`, i.e. one
//! memcpy, where typed records would be lowered field by field. The buffers are reused from
//! call to call so the hot path does not allocate once they have grown.

use std::borrow::Cow;
use std::sync::Arc;

use crate::span::{Attribute, AttributeValue, Resource, Span, SpanKind, SpanStatus};

use http_autoinstrument_plugin_layout::{
    put_range, put_u32, put_u64, ATTRIBUTE_KEY, ATTRIBUTE_ROW, ATTRIBUTE_TYPE, ATTRIBUTE_VALUE,
    KIND_CLIENT, KIND_SERVER, RESOURCE_ATTRIBUTES, RESOURCE_ROW, SPAN_ATTRIBUTES, SPAN_END,
    SPAN_HAS_PARENT, SPAN_KIND, SPAN_NAME, SPAN_PARENT_SPAN_ID, SPAN_RESOURCE, SPAN_ROW,
    SPAN_SPAN_ID, SPAN_START, SPAN_STATUS, SPAN_STATUS_MESSAGE, SPAN_TRACE_ID_HIGH,
    SPAN_TRACE_ID_LOW, STATUS_ERROR, STATUS_OK, STATUS_UNSET, TYPE_BOOL, TYPE_FLOAT, TYPE_INT,
    TYPE_STR,
};

use super::bindings::types as wit;

/// [`SharedBatch::update`] patches the encoding when at most one span in this many changed.
const PATCH_AT_MOST_ONE_IN: usize = 4;

pub struct BatchEncoder {
    batch: wit::SpanBatch,
    /// Resources already packed in this batch, by identity (spans of one process share one).
    resources: Vec<*const Resource>,
    attribute_rows: u32,
    constants: ConstantText,
}

// SAFETY: the raw pointers are never dereferenced, only compared for identity with the resources
// of the spans being encoded or patched, which are those of the batch that filled the table and
// alive with it (plugins cannot change a span's resource).
unsafe impl Send for BatchEncoder {}

impl Default for BatchEncoder {
    fn default() -> Self {
        BatchEncoder {
            batch: wit::SpanBatch {
                text: Vec::new(),
                spans: Vec::new(),
                attributes: Vec::new(),
                resources: Vec::new(),
            },
            resources: Vec::new(),
            attribute_rows: 0,
            constants: ConstantText::default(),
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
        b.spans.reserve(spans.len() * SPAN_ROW);
        self.resources.clear();
        self.attribute_rows = 0;
        self.constants.clear();
        for span in spans {
            let row = self.span_row(span);
            self.batch.spans.extend_from_slice(&row);
        }
        &self.batch
    }

    /// Brings the encoding up to date with `spans` after a plugin's edits, without encoding the
    /// spans it left alone: the spans at `changed` are packed again after what the tables hold
    /// (their old attribute rows and text stay behind, unreferenced), then the rows of the spans
    /// `dropped` flags are removed, as the chain removes the spans.
    fn patch(&mut self, spans: &[Span], changed: &[u32], dropped: &[bool]) {
        for &index in changed {
            let index = index as usize;
            if let Some(span) = spans.get(index) {
                let row = self.span_row(span);
                self.batch.spans[index * SPAN_ROW..(index + 1) * SPAN_ROW].copy_from_slice(&row);
            }
        }
        if dropped.contains(&true) {
            let rows = &mut self.batch.spans;
            let mut kept = 0;
            for (index, _) in dropped.iter().enumerate().filter(|(_, &d)| !d) {
                rows.copy_within(index * SPAN_ROW..(index + 1) * SPAN_ROW, kept * SPAN_ROW);
                kept += 1;
            }
            rows.truncate(kept * SPAN_ROW);
        }
    }

    /// Packs `span`'s attributes and text after what the tables hold; returns its row.
    fn span_row(&mut self, span: &Span) -> [u8; SPAN_ROW] {
        let b = &mut self.batch;
        let constants = &mut self.constants;
        let resource = resource_index(
            &mut self.resources,
            &mut self.attribute_rows,
            constants,
            b,
            &span.resource,
        );
        let (first, count) =
            push_attributes(&mut self.attribute_rows, constants, b, &span.attributes);
        let name = constants.push(&mut b.text, &span.name);
        let (status, message) = match &span.status {
            SpanStatus::Unset => (STATUS_UNSET, ""),
            SpanStatus::Ok => (STATUS_OK, ""),
            SpanStatus::Error { description } => (STATUS_ERROR, description.as_str()),
        };
        let message = push_text(&mut b.text, message);
        let mut row = [0u8; SPAN_ROW];
        // The ids travel as numbers: their big-endian bytes read as u64s.
        let [hi, lo] = [0, 8].map(|at| {
            let mut half = [0u8; 8];
            half.copy_from_slice(&span.trace_id[at..at + 8]);
            u64::from_be_bytes(half)
        });
        put_u64(&mut row, SPAN_TRACE_ID_HIGH, hi);
        put_u64(&mut row, SPAN_TRACE_ID_LOW, lo);
        put_u64(&mut row, SPAN_SPAN_ID, u64::from_be_bytes(span.span_id));
        if let Some(parent) = span.parent_span_id {
            put_u64(&mut row, SPAN_PARENT_SPAN_ID, u64::from_be_bytes(parent));
            row[SPAN_HAS_PARENT] = 1;
        }
        put_u64(&mut row, SPAN_START, span.start_unix_nanos);
        put_u64(&mut row, SPAN_END, span.end_unix_nanos);
        put_range(&mut row, SPAN_NAME, name);
        put_range(&mut row, SPAN_STATUS_MESSAGE, message);
        put_range(&mut row, SPAN_ATTRIBUTES, (first, count));
        put_u32(&mut row, SPAN_RESOURCE, resource);
        row[SPAN_KIND] = match span.kind {
            SpanKind::Server => KIND_SERVER,
            SpanKind::Client => KIND_CLIENT,
        };
        row[SPAN_STATUS] = status;
        row
    }
}

/// The encoded form of the batch a chain is working on, shared by its plugins: a plugin that
/// changed nothing leaves the encoding valid, so the next plugin gets it without re-encoding.
#[derive(Default)]
pub struct SharedBatch {
    encoder: BatchEncoder,
    current: bool,
}

impl SharedBatch {
    /// The encoding of `spans`, which must be the spans of the last call unless
    /// [`invalidate`](Self::invalidate) was called since.
    pub fn get(&mut self, spans: &[Span]) -> &wit::SpanBatch {
        if !self.current {
            self.encoder.encode(spans);
            self.current = true;
        }
        debug_assert_eq!(self.encoder.batch.spans.len(), spans.len() * SPAN_ROW);
        &self.encoder.batch
    }

    /// The spans changed (a new batch, or a plugin's failure policy): encode again on next use.
    pub fn invalidate(&mut self) {
        self.current = false;
    }

    /// A plugin's edits changed the spans at `changed` in place and flagged those to drop
    /// (`dropped`, by index; `spans` still holds them): patched when few changed, so a plugin that
    /// edits or drops a few spans (a redacted secret, a health check) does not cost the next one
    /// an encoding of the whole batch; encoded again on next use when many did, which costs the
    /// same and keeps the tables free of rows nothing refers to.
    pub fn update(&mut self, spans: &[Span], changed: &[u32], dropped: &[bool]) {
        if !self.current {
            return;
        }
        if changed.len() * PATCH_AT_MOST_ONE_IN > spans.len() {
            self.current = false;
            return;
        }
        self.encoder.patch(spans, changed, dropped);
    }
}

fn resource_index(
    seen: &mut Vec<*const Resource>,
    rows: &mut u32,
    constants: &mut ConstantText,
    b: &mut wit::SpanBatch,
    r: &Arc<Resource>,
) -> u32 {
    let ptr = Arc::as_ptr(r);
    if let Some(i) = seen.iter().position(|p| *p == ptr) {
        return i as u32;
    }
    let (first, count) = push_attributes(rows, constants, b, &r.attributes);
    let mut row = [0u8; RESOURCE_ROW];
    put_range(&mut row, RESOURCE_ATTRIBUTES, (first, count));
    b.resources.extend_from_slice(&row);
    seen.push(ptr);
    (seen.len() - 1) as u32
}

fn push_attributes(
    rows: &mut u32,
    constants: &mut ConstantText,
    b: &mut wit::SpanBatch,
    attrs: &[Attribute],
) -> (u32, u32) {
    let first = *rows;
    for a in attrs {
        let mut row = [0u8; ATTRIBUTE_ROW];
        put_range(&mut row, ATTRIBUTE_KEY, constants.push(&mut b.text, &a.key));
        match &a.value {
            AttributeValue::Str(s) => {
                row[ATTRIBUTE_TYPE] = TYPE_STR;
                put_range(&mut row, ATTRIBUTE_VALUE, constants.push(&mut b.text, s));
            }
            AttributeValue::Int(i) => {
                row[ATTRIBUTE_TYPE] = TYPE_INT;
                put_u64(&mut row, ATTRIBUTE_VALUE, *i as u64);
            }
            AttributeValue::Float(f) => {
                row[ATTRIBUTE_TYPE] = TYPE_FLOAT;
                put_u64(&mut row, ATTRIBUTE_VALUE, f.to_bits());
            }
            AttributeValue::Bool(v) => {
                row[ATTRIBUTE_TYPE] = TYPE_BOOL;
                put_u64(&mut row, ATTRIBUTE_VALUE, u64::from(*v));
            }
        }
        b.attributes.extend_from_slice(&row);
    }
    *rows += attrs.len() as u32;
    (first, attrs.len() as u32)
}

const CONSTANT_SLOT_BITS: u32 = 6;
const CONSTANT_SLOTS: usize = 1 << CONSTANT_SLOT_BITS;

/// Where the agent's own constant strings (semantic-convention keys, values such as `GET` or
/// `https`) already are in the batch's text, by address: each is written once per batch rather
/// than once per span, so most of a span's attributes cost a row and no text (the WIT allows
/// ranges to share bytes). A small table of two-way sets, the newest first: three constants that
/// meet in one set only cost another copy of one of them. (Direct-mapped, two constants whose
/// addresses met in one slot were written alternately, once per span, in whichever build laid
/// them out so.)
struct ConstantText {
    slots: [ConstantSlot; CONSTANT_SLOTS],
}

#[derive(Clone, Copy, Default)]
struct ConstantSlot {
    address: usize,
    len: u32,
    offset: u32,
}

impl Default for ConstantText {
    fn default() -> Self {
        ConstantText {
            slots: [ConstantSlot::default(); CONSTANT_SLOTS],
        }
    }
}

impl ConstantText {
    /// A new batch: its text starts empty.
    fn clear(&mut self) {
        *self = ConstantText::default();
    }

    /// The range of `s` in `text`, appending it unless it is a constant already there.
    #[expect(
        clippy::ptr_arg,
        reason = "whether the text is borrowed for 'static is what makes it a constant"
    )]
    fn push(&mut self, text: &mut Vec<u8>, s: &Cow<'static, str>) -> (u32, u32) {
        let Cow::Borrowed(constant) = s else {
            return push_text(text, s);
        };
        let address = constant.as_ptr() as usize;
        // Fibonacci hashing: the top bits of the product mix every bit of the address.
        let set = ((address as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            >> (64 - CONSTANT_SLOT_BITS + 1)) as usize;
        let [newest, older] = &mut self.slots[2 * set..2 * set + 2] else {
            unreachable!("a set is two slots");
        };
        let holds =
            |slot: &ConstantSlot| slot.address == address && slot.len as usize == constant.len();
        if holds(newest) {
            return (newest.offset, newest.len);
        }
        if holds(older) {
            return (older.offset, older.len);
        }
        let (offset, len) = push_text(text, constant);
        *older = *newest;
        *newest = ConstantSlot {
            address,
            len,
            offset,
        };
        (offset, len)
    }
}

fn push_text(text: &mut Vec<u8>, s: &str) -> (u32, u32) {
    let offset = text.len() as u32;
    text.extend_from_slice(s.as_bytes());
    (offset, s.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(resource: &Arc<Resource>, path: &str) -> Span {
        Span {
            trace_id: [7; 16],
            span_id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent_span_id: Some([9; 8]),
            name: "GET".into(),
            kind: SpanKind::Client,
            start_unix_nanos: 10,
            end_unix_nanos: 20,
            status: SpanStatus::Error {
                description: "boom".into(),
            },
            attributes: vec![
                Attribute::new("url.path", path.to_owned()),
                Attribute::new("http.response.status_code", 500i64),
            ],
            resource: resource.clone(),
        }
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    fn text(b: &wit::SpanBatch, row: &[u8], at: usize) -> String {
        let (o, l) = (u32_at(row, at) as usize, u32_at(row, at + 4) as usize);
        String::from_utf8(b.text[o..o + l].to_vec()).unwrap()
    }

    #[test]
    fn packs_rows_as_documented_and_shared_resources_once() {
        let r = Arc::new(Resource {
            attributes: vec![Attribute::new("service.name", "shop")],
        });
        let mut enc = BatchEncoder::default();
        let b = enc.encode(&[span(&r, "/a"), span(&r, "/b")]);
        assert_eq!(
            b.resources.len(),
            RESOURCE_ROW,
            "one resource shared by both spans"
        );
        assert_eq!(b.spans.len(), 2 * SPAN_ROW);
        assert_eq!(b.attributes.len(), 5 * ATTRIBUTE_ROW);
        let s1 = &b.spans[SPAN_ROW..];
        assert_eq!(u64_at(s1, 0), 0x0707070707070707);
        assert_eq!(u64_at(s1, 16), 0x0102030405060708);
        assert_eq!(u64_at(s1, 24), 0x0909090909090909);
        assert_eq!((s1[76], s1[77], s1[78]), (1, 2, 1));
        assert_eq!(u64_at(s1, 32), 10);
        assert_eq!(u64_at(s1, 40), 20);
        assert_eq!(text(b, s1, 48), "GET");
        assert_eq!(text(b, s1, 56), "boom");
        assert_eq!(u32_at(s1, 72), 0);
        let (first, count) = (u32_at(s1, 64) as usize, u32_at(s1, 68));
        assert_eq!(count, 2);
        let a = &b.attributes[first * ATTRIBUTE_ROW..];
        assert_eq!(text(b, a, 0), "url.path");
        assert_eq!(a[8], TYPE_STR);
        assert_eq!(text(b, a, 16), "/b");
        let a = &a[ATTRIBUTE_ROW..];
        assert_eq!((a[8], u64_at(a, 16)), (TYPE_INT, 500));
        let ra = &b.attributes[u32_at(&b.resources, 0) as usize * ATTRIBUTE_ROW..];
        assert_eq!(text(b, ra, 0), "service.name");
    }

    #[test]
    fn writes_a_constant_once_per_batch_and_every_owned_string_each_time() {
        let r = Arc::new(Resource::default());
        let mut enc = BatchEncoder::default();
        let b = enc.encode(&[span(&r, "/same"), span(&r, "/same")]);
        let times = |s: &str| {
            b.text
                .windows(s.len())
                .filter(|w| *w == s.as_bytes())
                .count()
        };
        assert_eq!(times("url.path"), 1);
        assert_eq!(times("GET"), 1, "a constant span name too");
        assert_eq!(times("/same"), 2);
        for s in b.spans.chunks(SPAN_ROW) {
            let a = &b.attributes[u32_at(s, 64) as usize * ATTRIBUTE_ROW..];
            assert_eq!(
                (text(b, a, 0), text(b, a, 16)),
                ("url.path".into(), "/same".into())
            );
        }
        let b = enc.encode(&[span(&r, "/next")]);
        assert_eq!(
            text(b, &b.attributes, 0),
            "url.path",
            "a new batch writes it again"
        );
    }

    #[test]
    fn a_constant_that_starts_another_is_not_taken_for_it() {
        let route: &'static str = "http.route";
        let r = Arc::new(Resource::default());
        let mut s = span(&r, "/a");
        s.attributes = vec![
            Attribute::new(&route[..4], &route[5..]),
            Attribute::new(route, &route[..4]),
        ];
        let mut enc = BatchEncoder::default();
        let b = enc.encode(&[s]);
        let second = &b.attributes[ATTRIBUTE_ROW..];
        assert_eq!(text(b, &b.attributes, 0), "http");
        assert_eq!(text(b, &b.attributes, 16), "route");
        assert_eq!(text(b, second, 0), "http.route");
        assert_eq!(text(b, second, 16), "http");
    }

    /// Each span row's name and attributes, as a plugin reads them.
    fn view(b: &wit::SpanBatch) -> Vec<(String, Vec<(String, String)>)> {
        b.spans
            .chunks(SPAN_ROW)
            .map(|s| {
                let first = u32_at(s, 64) as usize;
                let rows = &b.attributes[first * ATTRIBUTE_ROW..];
                let attributes = rows
                    .chunks(ATTRIBUTE_ROW)
                    .take(u32_at(s, 68) as usize)
                    .map(|a| match a[8] {
                        TYPE_STR => (text(b, a, 0), text(b, a, 16)),
                        _ => (text(b, a, 0), u64_at(a, 16).to_string()),
                    })
                    .collect();
                (text(b, s, 48), attributes)
            })
            .collect()
    }

    #[test]
    fn a_patched_encoding_reads_as_a_fresh_encoding_of_the_edited_batch() {
        let r = Arc::new(Resource::default());
        let mut spans: Vec<Span> = ["/a", "/b", "/c", "/d", "/e", "/f", "/g", "/h"]
            .iter()
            .map(|p| span(&r, p))
            .collect();
        let mut shared = SharedBatch::default();
        shared.get(&spans);
        spans[1].set_attribute("url.path", "/b?token=REDACTED");
        spans[1].set_attribute("app.new", "x");
        spans[6].name = "GET /g".into();
        let dropped = [false, false, true, false, false, false, false, true];
        shared.update(&spans, &[1, 6], &dropped);
        let mut flags = dropped.iter();
        spans.retain(|_| !flags.next().unwrap());
        let patched = view(shared.get(&spans));
        assert_eq!(patched, view(BatchEncoder::default().encode(&spans)));
        assert_eq!(patched[1].1[0].1, "/b?token=REDACTED");
        assert_eq!(patched[5].0, "GET /g");
    }

    #[test]
    fn many_changed_spans_are_encoded_again_instead_of_patched() {
        let r = Arc::new(Resource::default());
        let mut spans = vec![span(&r, "/a"), span(&r, "/b")];
        let mut shared = SharedBatch::default();
        let before = shared.get(&spans).attributes.len();
        spans[0].set_attribute("url.path", "/z");
        shared.update(&spans, &[0], &[false, false]);
        let b = shared.get(&spans);
        assert_eq!(b.attributes.len(), before, "no rows left behind");
        assert_eq!(view(b)[0].1[0].1, "/z");
    }

    #[test]
    fn reuses_buffers_between_batches() {
        let r = Arc::new(Resource::default());
        let mut enc = BatchEncoder::default();
        enc.encode(&[span(&r, "/a"), span(&r, "/b")]);
        let b = enc.encode(&[span(&r, "/c")]);
        assert_eq!(b.spans.len(), SPAN_ROW);
        assert_eq!(b.attributes.len(), 2 * ATTRIBUTE_ROW);
        assert_eq!(u32_at(&b.spans, 64), 0, "attribute rows restart at 0");
    }
}
