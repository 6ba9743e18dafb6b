//! The row layouts of the tables that cross the plugin boundary (`wit/plugin.wit`): spans,
//! attributes, resources and edits, as fixed-size little-endian rows whose strings are
//! (offset, length) ranges into one UTF-8 text buffer.
//!
//! Defined here once, as the event layouts are in `ebpf/common`: the agent's encoder and edit
//! decoder, the Rust guest SDK and its testing module use these constants, and the Python,
//! JavaScript and Go SDKs' layout files are generated from [`ALL`] (the agent's test
//! `plugins::golden` fails when a committed one differs). The tests below pin every value and
//! check that `wit/plugin.wit` documents the same offsets: changing a layout is a deliberate act
//! on every side at once, with a new WIT package version.
#![no_std]

macro_rules! layout {
    ($( $(#[$doc:meta])* $name:ident: $ty:ty = $value:expr; )*) => {
        $( $(#[$doc])* pub const $name: $ty = $value; )*
        /// Every constant of this crate by name, in declaration order (what the other
        /// languages' layout files are generated from).
        pub const ALL: &[(&str, u64)] = &[$((stringify!($name), $name as u64)),*];
    };
}

layout! {
    /// Bytes per span row.
    SPAN_ROW: usize = 80;
    /// u64: the trace id's bytes 0..8, big-endian, read as a number.
    SPAN_TRACE_ID_HIGH: usize = 0;
    /// u64: the trace id's bytes 8..16, big-endian, read as a number.
    SPAN_TRACE_ID_LOW: usize = 8;
    /// u64: the span id's bytes, big-endian, read as a number.
    SPAN_SPAN_ID: usize = 16;
    /// u64: the parent span id (meaningful when the byte at [`SPAN_HAS_PARENT`] is 1).
    SPAN_PARENT_SPAN_ID: usize = 24;
    /// u64: start, nanoseconds since the Unix epoch.
    SPAN_START: usize = 32;
    /// u64: end, nanoseconds since the Unix epoch.
    SPAN_END: usize = 40;
    /// Text range (u32 offset, u32 length): the span name.
    SPAN_NAME: usize = 48;
    /// Text range: the status message (empty unless the status is error).
    SPAN_STATUS_MESSAGE: usize = 56;
    /// u32 first attribute row, then u32 attribute count.
    SPAN_ATTRIBUTES: usize = 64;
    /// u32: the span's resource row.
    SPAN_RESOURCE: usize = 72;
    /// u8: one of `KIND_*`.
    SPAN_KIND: usize = 76;
    /// u8: one of `STATUS_*`.
    SPAN_STATUS: usize = 77;
    /// u8: 1 when the span has a parent, else 0.
    SPAN_HAS_PARENT: usize = 78;

    /// Bytes per attribute row.
    ATTRIBUTE_ROW: usize = 24;
    /// Text range: the key.
    ATTRIBUTE_KEY: usize = 0;
    /// u8: one of `TYPE_*`.
    ATTRIBUTE_TYPE: usize = 8;
    /// 8 bytes: a string's text range, an i64, an f64's bits, or a bool as u64 0 or 1.
    ATTRIBUTE_VALUE: usize = 16;

    /// Bytes per resource row.
    RESOURCE_ROW: usize = 8;
    /// u32 first attribute row, then u32 attribute count.
    RESOURCE_ATTRIBUTES: usize = 0;

    /// Bytes per edit row.
    EDIT_ROW: usize = 24;
    /// u32: the span's index in the batch.
    EDIT_SPAN: usize = 0;
    /// u8: one of `OP_*`.
    EDIT_OP: usize = 4;
    /// u8: set-attribute: the value's `TYPE_*`; set-status: the `STATUS_*`.
    EDIT_ARG: usize = 5;
    /// Text range: rename: the name; set- and remove-attribute: the key; set-status: the message.
    EDIT_TEXT: usize = 8;
    /// 8 bytes: the set-attribute value, as at [`ATTRIBUTE_VALUE`].
    EDIT_VALUE: usize = 16;

    TYPE_STR: u8 = 0;
    TYPE_INT: u8 = 1;
    TYPE_FLOAT: u8 = 2;
    TYPE_BOOL: u8 = 3;

    KIND_SERVER: u8 = 0;
    KIND_CLIENT: u8 = 1;

    STATUS_UNSET: u8 = 0;
    STATUS_OK: u8 = 1;
    STATUS_ERROR: u8 = 2;

    OP_DROP: u8 = 0;
    OP_RENAME: u8 = 1;
    OP_SET_ATTRIBUTE: u8 = 2;
    OP_REMOVE_ATTRIBUTE: u8 = 3;
    OP_SET_STATUS: u8 = 4;
}

/// The little-endian u32 at `at`; 0 when `bytes` is too short (a reader must not panic on a
/// malformed row).
#[inline(always)]
pub fn u32_at(bytes: &[u8], at: usize) -> u32 {
    match bytes.get(at..at.wrapping_add(4)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// The little-endian u64 at `at`; 0 when `bytes` is too short.
#[inline(always)]
pub fn u64_at(bytes: &[u8], at: usize) -> u64 {
    match bytes.get(at..at.wrapping_add(8)) {
        Some(s) => {
            let mut v = [0u8; 8];
            v.copy_from_slice(s);
            u64::from_le_bytes(v)
        }
        None => 0,
    }
}

/// Writes `v` little-endian at `at` (panics if `row` is too short: rows are written whole).
#[inline(always)]
pub fn put_u32(row: &mut [u8], at: usize, v: u32) {
    row[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` little-endian at `at`.
#[inline(always)]
pub fn put_u64(row: &mut [u8], at: usize, v: u64) {
    row[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Writes the text range (`offset`, `len`) at `at`.
#[inline(always)]
pub fn put_range(row: &mut [u8], at: usize, (offset, len): (u32, u32)) {
    put_u32(row, at, offset);
    put_u32(row, at + 4, len);
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// Every value, pinned: the WIT package version changes with any of them.
    #[test]
    fn layouts_are_pinned() {
        let expected: &[(&str, u64)] = &[
            ("SPAN_ROW", 80),
            ("SPAN_TRACE_ID_HIGH", 0),
            ("SPAN_TRACE_ID_LOW", 8),
            ("SPAN_SPAN_ID", 16),
            ("SPAN_PARENT_SPAN_ID", 24),
            ("SPAN_START", 32),
            ("SPAN_END", 40),
            ("SPAN_NAME", 48),
            ("SPAN_STATUS_MESSAGE", 56),
            ("SPAN_ATTRIBUTES", 64),
            ("SPAN_RESOURCE", 72),
            ("SPAN_KIND", 76),
            ("SPAN_STATUS", 77),
            ("SPAN_HAS_PARENT", 78),
            ("ATTRIBUTE_ROW", 24),
            ("ATTRIBUTE_KEY", 0),
            ("ATTRIBUTE_TYPE", 8),
            ("ATTRIBUTE_VALUE", 16),
            ("RESOURCE_ROW", 8),
            ("RESOURCE_ATTRIBUTES", 0),
            ("EDIT_ROW", 24),
            ("EDIT_SPAN", 0),
            ("EDIT_OP", 4),
            ("EDIT_ARG", 5),
            ("EDIT_TEXT", 8),
            ("EDIT_VALUE", 16),
            ("TYPE_STR", 0),
            ("TYPE_INT", 1),
            ("TYPE_FLOAT", 2),
            ("TYPE_BOOL", 3),
            ("KIND_SERVER", 0),
            ("KIND_CLIENT", 1),
            ("STATUS_UNSET", 0),
            ("STATUS_OK", 1),
            ("STATUS_ERROR", 2),
            ("OP_DROP", 0),
            ("OP_RENAME", 1),
            ("OP_SET_ATTRIBUTE", 2),
            ("OP_REMOVE_ATTRIBUTE", 3),
            ("OP_SET_STATUS", 4),
        ];
        assert_eq!(ALL, expected);
    }

    /// The fields of a row lie inside it, in order, without overlapping.
    #[test]
    fn fields_fit_their_rows_without_overlap() {
        let tables: &[(usize, &[(usize, usize)])] = &[
            (
                SPAN_ROW,
                &[
                    (SPAN_TRACE_ID_HIGH, 8),
                    (SPAN_TRACE_ID_LOW, 8),
                    (SPAN_SPAN_ID, 8),
                    (SPAN_PARENT_SPAN_ID, 8),
                    (SPAN_START, 8),
                    (SPAN_END, 8),
                    (SPAN_NAME, 8),
                    (SPAN_STATUS_MESSAGE, 8),
                    (SPAN_ATTRIBUTES, 8),
                    (SPAN_RESOURCE, 4),
                    (SPAN_KIND, 1),
                    (SPAN_STATUS, 1),
                    (SPAN_HAS_PARENT, 1),
                ],
            ),
            (
                ATTRIBUTE_ROW,
                &[
                    (ATTRIBUTE_KEY, 8),
                    (ATTRIBUTE_TYPE, 1),
                    (ATTRIBUTE_VALUE, 8),
                ],
            ),
            (RESOURCE_ROW, &[(RESOURCE_ATTRIBUTES, 8)]),
            (
                EDIT_ROW,
                &[
                    (EDIT_SPAN, 4),
                    (EDIT_OP, 1),
                    (EDIT_ARG, 1),
                    (EDIT_TEXT, 8),
                    (EDIT_VALUE, 8),
                ],
            ),
        ];
        for (row, fields) in tables {
            let mut end = 0;
            for (at, size) in *fields {
                assert!(*at >= end, "field at {at} overlaps the one before");
                end = at + size;
            }
            assert!(end <= *row, "fields end at {end}, past a {row}-byte row");
        }
    }

    /// `wit/plugin.wit` is what plugin authors read: it documents each offset as "AT TYPE what",
    /// and must say the same as these constants.
    #[test]
    fn the_wit_file_documents_these_offsets() {
        let wit = include_str!("../../wit/plugin.wit");
        // The words of its doc comments, one space apart.
        let docs = wit
            .lines()
            .filter_map(|l| l.trim().strip_prefix("///"))
            .flat_map(str::split_whitespace)
            .collect::<Vec<_>>()
            .join(" ");
        let claims = [
            (SPAN_ROW, "bytes per span:"),
            (SPAN_TRACE_ID_HIGH, "u64 trace-id high half"),
            (SPAN_TRACE_ID_LOW, "u64 trace-id low half"),
            (SPAN_SPAN_ID, "u64 span-id"),
            (SPAN_PARENT_SPAN_ID, "u64 parent-span-id"),
            (SPAN_START, "u64 start,"),
            (SPAN_END, "u64 end,"),
            (SPAN_NAME, "u32 name offset,"),
            (SPAN_NAME + 4, "u32 name length"),
            (SPAN_STATUS_MESSAGE, "u32 status message offset,"),
            (SPAN_STATUS_MESSAGE + 4, "u32 status message length"),
            (SPAN_ATTRIBUTES, "u32 first attribute"),
            (SPAN_ATTRIBUTES + 4, "u32 attribute count"),
            (SPAN_RESOURCE, "u32 resource"),
            (SPAN_KIND, "u8 kind: 0 server, 1 client"),
            (SPAN_STATUS, "u8 status: 0 unset, 1 ok, 2 error"),
            (SPAN_HAS_PARENT, "u8 has parent"),
            (ATTRIBUTE_ROW, "bytes per attribute:"),
            (ATTRIBUTE_KEY, "u32 key offset,"),
            (ATTRIBUTE_KEY + 4, "u32 key length"),
            (
                ATTRIBUTE_TYPE,
                "u8 value type: 0 string, 1 int, 2 float, 3 bool",
            ),
            (ATTRIBUTE_VALUE, "value: string: u32 offset at 16"),
            (RESOURCE_ROW, "bytes per resource"),
            (RESOURCE_ATTRIBUTES, "u32 first attribute,"),
            (EDIT_ROW, "bytes per edit:"),
            (EDIT_SPAN, "u32 span"),
            (
                EDIT_OP,
                "u8 operation: 0 drop, 1 rename, 2 set-attribute, 3 remove-attribute, 4 set-status",
            ),
            (EDIT_ARG, "u8 set-attribute: value type"),
            (EDIT_TEXT, "u32 offset,"),
            (EDIT_VALUE, "set-attribute value"),
        ];
        let mut missing = Vec::new();
        for (at, what) in claims {
            let claim = std::format!("{at} {what}");
            if !docs.contains(&claim) {
                missing.push(claim);
            }
        }
        assert!(
            missing.is_empty(),
            "wit/plugin.wit does not document: {missing:?}"
        );
        assert!(docs.contains("u32 key offset, 4 u32 key length"));
    }
}
