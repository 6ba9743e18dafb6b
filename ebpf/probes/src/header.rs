//! Finding `User-Agent` in `Request.Header` (a `map[string][]string`) without calling Go.
//!
//! The probe walks the map's memory with bounded loops. Two layouts exist: Go <= 1.23's buckets
//! (`runtime.hmap`) and Go >= 1.24's Swiss tables (`internal/runtime/maps`). Both keep entries in
//! groups of 8 slots; only the group addressing and the order inside a group differ. A group is
//! copied with one read, so a request pays one read per group plus one per key that is ten
//! bytes long (the length of `User-Agent`), not several per header. Header keys are canonicalised
//! by Go (`User-Agent`), so a byte comparison suffices.
use http_autoinstrument_common::{map_layout, BoundedStr, GoOffsets, USER_AGENT_CAP};

use crate::go::{field, read_bytes, read_u64, read_words, Window, WINDOW_WORDS};

const KEY: &[u8; 10] = b"User-Agent";
const SLOTS_PER_GROUP: usize = 8;
/// Most groups (buckets, with their overflow buckets) searched: enough for ~100 headers; larger
/// maps are searched partially.
const MAX_GROUPS: u64 = 16;

/// Old layout: `tophash [8]uint8`, `keys [8]string`, `elems [8][]string`, `overflow *bmap`; in
/// words: tophash at 0, key `i` at `1 + 2i`, elem `i` at `17 + 3i`.
const BUCKET_WORDS: usize = 1 + 8 * 2 + 8 * 3 + 1;
/// tophash values below this mark empty or evacuated slots.
const MIN_TOP_HASH: u64 = 5;

/// Swiss layout: one control word (a byte per slot, high bit set = empty/deleted) followed by 8
/// slots of `{key string, elem []string}`; in words: key `i` at `1 + 5i`, elem `i` at `3 + 5i`.
const SWISS_GROUP_WORDS: usize = 1 + 8 * 5;

/// Words of the per-CPU buffer one group is copied into: the larger of the two layouts, and
/// `MISSED_GROUP`.
pub const GROUP_WORDS: usize = BUCKET_WORDS + 1;

/// The last word of that buffer, after either layout's group: where the search notes a group it
/// could not copy whole, to search it slot by slot once the others are done.
///
/// Why a copy can fail: Go takes fresh memory from the OS without zeroing it (it is zero already)
/// and never writes an empty slot, so the tail of a new map's group can lie on a page that was
/// never faulted in, which a BPF read cannot fault in. The copy of the whole group then fails,
/// though every used slot is on a page that is present: a `User-Agent` was missed in 2 of 20 runs
/// of the end-to-end test's 18-header HTTP/2 request to a fresh server (none in 50 since). Why
/// after the loop: any extra path inside it, per group, took the verifier past its limit of a
/// million instructions.
const MISSED_GROUP: usize = BUCKET_WORDS;

#[inline(always)]
pub fn find_user_agent(
    dst: &mut BoundedStr<USER_AGENT_CAP>,
    map: u64,
    map_buffer: &mut [u64; WINDOW_WORDS],
    group: &mut [u64; GROUP_WORDS],
    offsets: &GoOffsets,
) {
    if map == 0 {
        return;
    }
    // The map's header in one read; an empty map (a request without headers) ends here.
    let header = Window::read(map_buffer, map, offsets.map_window_words);
    if header.u64(offsets.map_count) == Some(0) {
        return;
    }
    if offsets.map_layout == map_layout::SWISS {
        find_in_swiss(dst, &header, group, offsets);
    } else {
        find_in_buckets(dst, &header, group, offsets);
    }
}

#[inline(always)]
fn find_in_buckets(
    dst: &mut BoundedStr<USER_AGENT_CAP>,
    map: &Window,
    group: &mut [u64; GROUP_WORDS],
    offsets: &GoOffsets,
) {
    let Some(b) = map.byte(offsets.hmap_b) else {
        return;
    };
    let Some(buckets) = map.u64(offsets.hmap_buckets) else {
        return;
    };
    let b = b as u64;
    let count = if b >= 4 { MAX_GROUPS } else { 1u64 << b };
    // A bucket that filled up chains to overflow buckets (its last word): they are searched
    // before the next bucket. Hash seeds are random per map: 10 keys in 2 buckets put 9 or more
    // in one for 22 seeds in 1024.
    let mut index = 0;
    let mut address = buckets;
    // A bucket that could not be copied whole is searched slot by slot after the others (see
    // `MISSED_GROUP`). It has no overflow bucket: a full bucket was written all over.
    group[MISSED_GROUP] = 0;
    for _ in 0..MAX_GROUPS {
        let read = read_words(&mut group[..BUCKET_WORDS], address);
        if read {
            if search_group(dst, group, Layout::Buckets) {
                return;
            }
        } else {
            group[MISSED_GROUP] = address;
        }
        let overflow = if read { group[BUCKET_WORDS - 1] } else { 0 };
        if overflow != 0 {
            address = overflow;
        } else {
            index += 1;
            if index >= count {
                break;
            }
            address = buckets + index * BUCKET_WORDS as u64 * 8;
        }
    }
    search_missed_group(dst, group, Layout::Buckets);
}

#[inline(always)]
fn find_in_swiss(
    dst: &mut BoundedStr<USER_AGENT_CAP>,
    map: &Window,
    group: &mut [u64; GROUP_WORDS],
    offsets: &GoOffsets,
) {
    let Some(dir_len) = map.u64(offsets.swiss_dir_len) else {
        return;
    };
    let Some(dir) = map.u64(offsets.swiss_dir_ptr) else {
        return;
    };
    // A small map (<= 8 entries) has no directory: dirPtr points at its single group.
    let (groups, count) = if dir_len == 0 {
        (dir, 1)
    } else {
        let table = read_u64(dir, 0).unwrap_or(0);
        let groups = read_u64(table, offsets.swiss_table_groups).unwrap_or(0);
        let mask = read_u64(
            table,
            field(offsets.swiss_table_groups, 0).wrapping_add(offsets.swiss_groups_length_mask),
        )
        .unwrap_or(0);
        (
            groups,
            if mask >= MAX_GROUPS {
                MAX_GROUPS
            } else {
                mask + 1
            },
        )
    };
    // The last group that could not be copied whole, searched slot by slot after the others.
    group[MISSED_GROUP] = 0;
    for index in 0..MAX_GROUPS {
        if index >= count {
            break;
        }
        let address = groups + index * SWISS_GROUP_WORDS as u64 * 8;
        if !read_words(&mut group[..SWISS_GROUP_WORDS], address) {
            group[MISSED_GROUP] = address;
            continue;
        }
        if search_group(dst, group, Layout::Swiss) {
            return;
        }
    }
    search_missed_group(dst, group, Layout::Swiss);
}

/// The two layouts of a group's slots, as the search reads them.
#[derive(Clone, Copy)]
enum Layout {
    Buckets,
    Swiss,
}

impl Layout {
    /// Whether the slot is empty, from the group's first word (tophash or control bytes).
    #[inline(always)]
    fn is_empty(self, first: u64, slot: usize) -> bool {
        let byte = first >> (slot * 8) & 0xff;
        match self {
            Layout::Buckets => byte < MIN_TOP_HASH,
            Layout::Swiss => byte & 0x80 != 0,
        }
    }

    /// The words where the slot's key (a string, 2 words) and value (a slice, 3 words) start.
    #[inline(always)]
    fn key_and_value(self, slot: usize) -> (usize, usize) {
        match self {
            Layout::Buckets => (1 + 2 * slot, 17 + 3 * slot),
            Layout::Swiss => (1 + 5 * slot, 3 + 5 * slot),
        }
    }
}

/// Searches the group in `group` for `User-Agent`; true when found (and copied).
#[inline(always)]
fn search_group(
    dst: &mut BoundedStr<USER_AGENT_CAP>,
    group: &[u64; GROUP_WORDS],
    layout: Layout,
) -> bool {
    let first = group[0];
    for slot in 0..SLOTS_PER_GROUP {
        if layout.is_empty(first, slot) {
            continue;
        }
        let (key, value) = layout.key_and_value(slot);
        if is_user_agent(group[key], group[key + 1]) {
            copy_first_value(dst, group[value], group[value + 1]);
            return true;
        }
    }
    false
}

/// Searches the group noted at `MISSED_GROUP`, if any, reading its used slots one by one.
#[inline(always)]
fn search_missed_group(
    dst: &mut BoundedStr<USER_AGENT_CAP>,
    group: &mut [u64; GROUP_WORDS],
    layout: Layout,
) {
    let missed = group[MISSED_GROUP];
    if missed == 0 || !read_words(&mut group[..1], missed) {
        return;
    }
    let first = group[0];
    for slot in 0..SLOTS_PER_GROUP {
        if layout.is_empty(first, slot) {
            continue;
        }
        // Zeros where a read fails (the helper clears its destination): an empty key.
        let (key, value) = layout.key_and_value(slot);
        for (at, words) in [(key, 2), (value, 3)] {
            if let Some(part) = group.get_mut(at..at + words) {
                let _ = read_words(part, missed + at as u64 * 8);
            }
        }
    }
    search_group(dst, group, layout);
}

/// Whether the Go string (`ptr`, `len`) is `User-Agent`: only ten-byte keys are read.
#[inline(always)]
fn is_user_agent(ptr: u64, len: u64) -> bool {
    if len != KEY.len() as u64 {
        return false;
    }
    let mut name = BoundedStr::<16> {
        len: 0,
        bytes: [0; 16],
    };
    read_bytes(&mut name, ptr, len);
    name.len == KEY.len() as u64 && &name.bytes[..KEY.len()] == KEY
}

/// Copies the first value of a `[]string` whose data pointer and length are `values`, `count`.
#[inline(always)]
fn copy_first_value(dst: &mut BoundedStr<USER_AGENT_CAP>, values: u64, count: u64) {
    // The first value's string header (ptr, len) in one read.
    let mut first = [0u64; 2];
    if count == 0 || !read_words(&mut first, values) {
        return;
    }
    read_bytes(dst, first[0], first[1]);
}
