//! Finding `User-Agent` in `Request.Header` (a `map[string][]string`) without calling Go.
//!
//! The probe walks the map's memory with bounded loops. Two layouts exist: Go <= 1.23's buckets
//! (`runtime.hmap`) and Go >= 1.24's Swiss tables (`internal/runtime/maps`). Both keep entries in
//! groups of 8 slots; only the group addressing differs. Header keys are canonicalised by Go
//! (`User-Agent`), so a byte comparison suffices.
use http_autoinstrument_common::{map_layout, BoundedStr, GoOffsets, USER_AGENT_CAP};

use crate::go::{field, read_bytes, read_u64, Window, WINDOW_WORDS};

const KEY: &[u8; 10] = b"User-Agent";
const SLOTS_PER_GROUP: u64 = 8;
/// Most groups (buckets) searched: enough for ~100 headers; larger maps are searched partially.
const MAX_GROUPS: u64 = 16;

/// Old layout: `tophash [8]uint8`, `keys [8]string`, `elems [8][]string`, `overflow *bmap`.
const BUCKET_KEYS: u64 = 8;
const BUCKET_ELEMS: u64 = BUCKET_KEYS + 8 * 16;
const BUCKET_SIZE: u64 = BUCKET_ELEMS + 8 * 24 + 8;
/// tophash values below this mark empty or evacuated slots.
const MIN_TOP_HASH: u64 = 5;

/// Swiss layout: a group is one control word (a byte per slot, high bit set = empty/deleted)
/// followed by 8 slots of `{key string, elem []string}`.
const SLOT_SIZE: u64 = 16 + 24;
const GROUP_SIZE: u64 = 8 + SLOTS_PER_GROUP * SLOT_SIZE;

pub fn find_user_agent(
    dst: &mut BoundedStr<USER_AGENT_CAP>,
    map: u64,
    buffer: &mut [u64; WINDOW_WORDS],
    offsets: &GoOffsets,
) {
    if map == 0 {
        return;
    }
    // The map's header in one read; an empty map (a request without headers) ends here.
    let header = Window::read(buffer, map);
    if header.u64(offsets.map_count) == Some(0) {
        return;
    }
    if offsets.map_layout == map_layout::SWISS {
        find_in_swiss(dst, &header, offsets);
    } else {
        find_in_buckets(dst, &header, offsets);
    }
}

#[inline(always)]
fn find_in_buckets(dst: &mut BoundedStr<USER_AGENT_CAP>, map: &Window, offsets: &GoOffsets) {
    let Some(b) = map.byte(offsets.hmap_b) else {
        return;
    };
    let Some(buckets) = map.u64(offsets.hmap_buckets) else {
        return;
    };
    let b = b as u64;
    let count = if b >= 4 { MAX_GROUPS } else { 1u64 << b };
    for group in 0..MAX_GROUPS {
        if group >= count {
            return;
        }
        let bucket = buckets + group * BUCKET_SIZE;
        // The 8 tophash bytes in one read, then each slot from the copy.
        let tophashes = read_u64(bucket, 0).unwrap_or(0);
        for slot in 0..SLOTS_PER_GROUP {
            if tophashes >> (slot * 8) & 0xff < MIN_TOP_HASH {
                continue;
            }
            if copy_if_user_agent(
                dst,
                bucket + BUCKET_KEYS + slot * 16,
                bucket + BUCKET_ELEMS + slot * 24,
            ) {
                return;
            }
        }
    }
}

#[inline(always)]
fn find_in_swiss(dst: &mut BoundedStr<USER_AGENT_CAP>, map: &Window, offsets: &GoOffsets) {
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
    for group_index in 0..MAX_GROUPS {
        if group_index >= count {
            return;
        }
        let group = groups + group_index * GROUP_SIZE;
        // The group's control word (a byte per slot) in one read, then each slot from the copy.
        let ctrl = read_u64(group, 0).unwrap_or(u64::MAX);
        for slot in 0..SLOTS_PER_GROUP {
            if ctrl >> (slot * 8) & 0x80 != 0 {
                continue;
            }
            let key = group + 8 + slot * SLOT_SIZE;
            if copy_if_user_agent(dst, key, key + 16) {
                return;
            }
        }
    }
}

/// If the string at `key` is `User-Agent`, copies the first value of the `[]string` at `elem`.
#[inline(always)]
fn copy_if_user_agent(dst: &mut BoundedStr<USER_AGENT_CAP>, key: u64, elem: u64) -> bool {
    if read_u64(key, 8) != Some(KEY.len() as u64) {
        return false;
    }
    let Some(key_ptr) = read_u64(key, 0) else {
        return false;
    };
    let mut name = BoundedStr::<16> {
        len: 0,
        bytes: [0; 16],
    };
    read_bytes(&mut name, key_ptr, KEY.len() as u64);
    if name.len != KEY.len() as u64 || &name.bytes[..KEY.len()] != KEY {
        return false;
    }
    // elem is a []string: {ptr, len, cap}; the first value's string header is at ptr.
    if read_u64(elem, 8).unwrap_or(0) == 0 {
        return true;
    }
    let values = read_u64(elem, 0).unwrap_or(0);
    let (Some(ptr), Some(len)) = (read_u64(values, 0), read_u64(values, 8)) else {
        return true;
    };
    read_bytes(dst, ptr, len);
    true
}
