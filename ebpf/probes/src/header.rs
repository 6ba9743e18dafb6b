//! Finding `User-Agent` and `Traceparent` in `Request.Header` (a `map[string][]string`) without
//! calling Go, in one walk when the request starts: where their values are (Go's strings do not
//! move), for the request's end to copy the user agent and the start to read the trace context.
//!
//! The probe walks the map's memory with bounded loops. Two layouts exist: Go <= 1.23's buckets
//! (`runtime.hmap`) and Go >= 1.24's Swiss tables (`internal/runtime/maps`). Both keep entries in
//! groups of 8 slots; only the group addressing and the order inside a group differ. A group is
//! copied with one read, so a request pays one read per group plus one per key as long as
//! `User-Agent` or `Traceparent`, not several per header. Header keys are canonicalised
//! by Go (`User-Agent`), so a byte comparison suffices.
use aya_ebpf::helpers::generated::bpf_probe_read_user;
use http_autoinstrument_common::{map_layout, GoOffsets};

use crate::go::{field, read_u64, read_words, Window, WINDOW_WORDS};

const USER_AGENT: &[u8; 10] = b"User-Agent";
/// Go canonicalises header names: `traceparent` is stored as `Traceparent`.
const TRACEPARENT: &[u8; 11] = b"Traceparent";

/// Where the wanted headers' values are: (pointer, length) of the first value of each, and how
/// many values `Traceparent` has (more than one makes it invalid).
#[derive(Clone, Copy, Default)]
pub struct Found {
    pub user_agent: (u64, u64),
    pub traceparent: (u64, u64),
    pub traceparents: u64,
    /// Where a slot's key is read to be compared (map memory, not stack: the search is unrolled
    /// per slot, and stack copies of it took a probe past the 512-byte stack).
    pub key: [u64; 2],
}

/// Its fields are written and read through volatile accesses during the search: kept in a map
/// (`FOUND_HEADERS`) and out of registers, what was found does not split the verifier's paths.
/// With the two values on the stack, each slot's outcome made its own path and the entry probe
/// went past the verifier's limit of a million instructions.
impl Found {
    #[inline(always)]
    pub fn clear(&mut self) {
        unsafe { core::ptr::write_volatile(self, Found::default()) }
    }

    #[inline(always)]
    fn done(&self) -> bool {
        let (user_agent, traceparents) = unsafe {
            (
                core::ptr::read_volatile(&self.user_agent.0),
                core::ptr::read_volatile(&self.traceparents),
            )
        };
        user_agent != 0 && traceparents != 0
    }

    #[inline(always)]
    fn set_user_agent(&mut self, value: (u64, u64)) {
        unsafe { core::ptr::write_volatile(&mut self.user_agent, value) }
    }

    #[inline(always)]
    fn set_traceparent(&mut self, value: (u64, u64), count: u64) {
        unsafe {
            core::ptr::write_volatile(&mut self.traceparent, value);
            core::ptr::write_volatile(&mut self.traceparents, count);
        }
    }
}
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
/// though every used slot is on a page that is present (seen as a missing `User-Agent` on the
/// end-to-end test's 18-header HTTP/2 request to a fresh server). Why after the loop: any extra path inside it, per group, took the verifier past its limit of a
/// million instructions.
const MISSED_GROUP: usize = BUCKET_WORDS;

#[inline(always)]
pub fn find_headers(
    dst: &mut Found,
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
    dst: &mut Found,
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
    dst: &mut Found,
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

/// Runs `$body` once for each of a group's slots (`$slot` 0 to 7), unrolled. As a loop, the
/// compiler lays it out with a back edge that falls through rather than jumps, which older
/// kernels' verifier rejects ("back-edge from insn"; Linux 6.1, Debian 12's, does; 6.18 does not).
/// `$body` skips to the next slot with `break 'next`.
macro_rules! each_slot {
    ($slot:ident => $body:block) => {
        each_slot!(@ $slot $body 0 1 2 3 4 5 6 7)
    };
    (@ $slot:ident $body:block $($n:literal)*) => {
        $({
            let $slot: usize = $n;
            $body
        })*
    };
}

/// Searches the group in `group` for the wanted headers; true when both are found.
#[inline(always)]
fn search_group(dst: &mut Found, group: &[u64; GROUP_WORDS], layout: Layout) -> bool {
    let first = group[0];
    each_slot!(slot => {
        'next: {
            if layout.is_empty(first, slot) {
                break 'next;
            }
            let (key, value) = layout.key_and_value(slot);
            match wanted_key(&mut dst.key, group[key], group[key + 1]) {
                Wanted::UserAgent => {
                    dst.set_user_agent(first_value(group[value], group[value + 1]));
                }
                Wanted::Traceparent => {
                    dst.set_traceparent(
                        first_value(group[value], group[value + 1]),
                        group[value + 1],
                    );
                }
                Wanted::Neither => break 'next,
            }
            if dst.done() {
                return true;
            }
        }
    });
    false
}

/// Searches the group noted at `MISSED_GROUP`, if any, reading its used slots one by one.
#[inline(always)]
fn search_missed_group(dst: &mut Found, group: &mut [u64; GROUP_WORDS], layout: Layout) {
    let missed = group[MISSED_GROUP];
    if missed == 0 || !read_words(&mut group[..1], missed) {
        return;
    }
    let first = group[0];
    each_slot!(slot => {
        if !layout.is_empty(first, slot) {
            // Zeros where a read fails (the helper clears its destination): an empty key.
            let (key, value) = layout.key_and_value(slot);
            let _ = read_words(&mut group[key..key + 2], missed + key as u64 * 8);
            let _ = read_words(&mut group[value..value + 3], missed + value as u64 * 8);
        }
    });
    search_group(dst, group, layout);
}

enum Wanted {
    UserAgent,
    Traceparent,
    Neither,
}

/// Which wanted header the Go string (`ptr`, `len`) names: only keys of their lengths are read,
/// each with one read of a size known at compile time, and compared word by word: no byte loop
/// and no length the verifier has to bound.
#[inline(always)]
fn wanted_key(key: &mut [u64; 2], ptr: u64, len: u64) -> Wanted {
    let is_user_agent = len == USER_AGENT.len() as u64;
    if !is_user_agent && len != TRACEPARENT.len() as u64 {
        return Wanted::Neither;
    }
    *key = [0; 2];
    let bytes = key.as_mut_ptr() as *mut _;
    let read = if is_user_agent {
        unsafe { bpf_probe_read_user(bytes, USER_AGENT.len() as u32, ptr as *const _) }
    } else {
        unsafe { bpf_probe_read_user(bytes, TRACEPARENT.len() as u32, ptr as *const _) }
    };
    match (read == 0, is_user_agent) {
        (true, true) if *key == USER_AGENT_WORDS => Wanted::UserAgent,
        (true, false) if *key == TRACEPARENT_WORDS => Wanted::Traceparent,
        _ => Wanted::Neither,
    }
}

/// A key of at most 16 bytes as the two little-endian words it occupies in memory.
const fn key_words(key: &[u8]) -> [u64; 2] {
    let mut words = [0u64; 2];
    let mut i = 0;
    while i < key.len() {
        words[i / 8] |= (key[i] as u64) << (8 * (i % 8));
        i += 1;
    }
    words
}

const USER_AGENT_WORDS: [u64; 2] = key_words(USER_AGENT);
const TRACEPARENT_WORDS: [u64; 2] = key_words(TRACEPARENT);

/// (pointer, length) of the first value of a `[]string` whose data pointer and length are
/// `values`, `count`; (0, 0) when there is none.
#[inline(always)]
fn first_value(values: u64, count: u64) -> (u64, u64) {
    // The first value's string header (ptr, len) in one read.
    let mut first = [0u64; 2];
    if count == 0 || !read_words(&mut first, values) {
        return (0, 0);
    }
    (first[0], first[1])
}
