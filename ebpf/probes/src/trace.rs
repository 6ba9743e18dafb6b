//! Trace contexts in the probes: new ids, the sampling decision where a trace starts, and the
//! parent of a client call, found through its request's `context.Context`.
use aya_ebpf::{
    helpers::bpf_get_prandom_u32,
    macros::map,
    maps::{Array, PerCpuArray},
};
use http_autoinstrument_common::{
    is_sampled, set_of, ContextKey, GoOffsets, TraceContext, ABSENT, CONTEXT_TYPES, FLAG_SAMPLED,
};

use crate::go::read_words;

/// The trace context of every server request in flight, by its `Request.ctx` value: where a
/// client call made with that context, or one derived from it, finds its parent. Written when a
/// request starts, removed when it ends (Go reuses the memory of a context that is gone).
/// A set-associative array, as the in-flight table: a slot costs a few loads and stores where a
/// hash map's update takes a lock and an element from its free list, on every request. When a
/// set is full (more requests in flight on it than ways, or entries of killed processes), a
/// random way gives way; that request's calls then find their parent by goroutine only.
/// Sized like the in-flight table, for the same reason: every request writes a set picked by
/// its new context's address, so a table larger than the caches costs a wait for memory per
/// request (figures in the commit that sized it).
#[map]
static CONTEXTS: Array<ContextEntry> = Array::with_max_entries(CONTEXT_SETS * CONTEXT_WAYS, 0);

const CONTEXT_SETS: u32 = 128;
const CONTEXT_WAYS: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ContextEntry {
    key: ContextKey,
    trace: TraceContext,
    /// Of `key` and `trace` together: two CPUs that fill one way at once may leave one's key
    /// with the other's context, which this word then does not match.
    check: u64,
}

impl ContextEntry {
    #[inline(always)]
    fn check_of(key: &ContextKey, trace: &TraceContext) -> u64 {
        let word = |b: &[u8], at: usize| {
            u64::from_le_bytes([
                b[at],
                b[at + 1],
                b[at + 2],
                b[at + 3],
                b[at + 4],
                b[at + 5],
                b[at + 6],
                b[at + 7],
            ])
        };
        key.context
            ^ (key.pid as u64).rotate_left(17)
            ^ word(&trace.trace_id, 0).rotate_left(29)
            ^ word(&trace.trace_id, 8).rotate_left(41)
            ^ word(&trace.span_id, 0).rotate_left(53)
            ^ ((trace.flags as u64) << 8 | trace.parent as u64)
            ^ word(&trace.parent_span_id, 0).rotate_left(7)
    }
}

/// Records `trace` as the context of the request whose `Request.ctx` is `key`.
#[inline(always)]
pub fn remember_context(key: &ContextKey, trace: &TraceContext) {
    let first = set_of(key.context, key.pid, CONTEXT_SETS) * CONTEXT_WAYS;
    // A way number, not a pointer: a map value pointer carried through the loop in an `Option`
    // is compiled in a shape Linux 6.1's verifier loses the pointer type of.
    let mut chosen = CONTEXT_WAYS;
    for way in 0..CONTEXT_WAYS {
        let Some(entry) = CONTEXTS.get(first + way) else {
            continue;
        };
        if entry.key == *key {
            chosen = way;
            break;
        }
        if chosen == CONTEXT_WAYS && entry.key.context == 0 {
            chosen = way;
        }
    }
    if chosen == CONTEXT_WAYS {
        chosen = unsafe { bpf_get_prandom_u32() } % CONTEXT_WAYS;
    }
    let Some(entry) = CONTEXTS.get_ptr_mut(first + chosen) else {
        return;
    };
    let entry = unsafe { &mut *entry };
    entry.trace = *trace;
    entry.key = *key;
    entry.check = ContextEntry::check_of(key, trace);
}

/// The index in `CONTEXTS` of `key`'s entry, if any.
#[inline(always)]
fn context_index(key: &ContextKey) -> Option<u32> {
    let first = set_of(key.context, key.pid, CONTEXT_SETS) * CONTEXT_WAYS;
    for way in 0..CONTEXT_WAYS {
        if CONTEXTS
            .get(first + way)
            .is_some_and(|entry| entry.key == *key)
        {
            return Some(first + way);
        }
    }
    None
}

/// Forgets the context of a request that ended.
#[inline(always)]
pub fn forget_context(key: &ContextKey) {
    if let Some(entry) = context_index(key).and_then(|index| CONTEXTS.get_ptr_mut(index)) {
        unsafe { (*entry).key.context = 0 };
    }
}

/// The sampler (`sampler::*` of the common crate) and its ratio bound, set by the agent at load.
#[no_mangle]
static SAMPLER: u64 = http_autoinstrument_common::sampler::PARENT_BASED;
#[no_mangle]
static SAMPLER_BOUND: u64 = 1 << 63;

/// How many contexts a client call's context is followed through to a server request's: a
/// handler's context is rarely more than a few derivations (values, timeouts) from the request's.
const MAX_CONTEXT_HOPS: usize = 16;

/// The id generator's state, per CPU: 0 until the CPU's first id.
#[map]
static ID_STATE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// 64 random bits for ids: SplitMix64 over a per-CPU counter that starts at a point the kernel's
/// random generator picks. A helper call costs the traced service more than this arithmetic, and
/// the ids only need to be unique and uniform (as a Go SDK's `math/rand` ids are), not secret.
#[inline(always)]
fn random_u64() -> u64 {
    let seed = || {
        ((unsafe { bpf_get_prandom_u32() } as u64) << 32) | unsafe { bpf_get_prandom_u32() } as u64
    };
    let Some(state) = ID_STATE.get_ptr_mut(0) else {
        return seed();
    };
    let mut counter = unsafe { *state };
    if counter == 0 {
        counter = seed();
    }
    counter = counter.wrapping_add(0x9e37_79b9_7f4a_7c15);
    unsafe { *state = counter };
    let mut z = counter;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[inline(always)]
fn random_bytes<const N: usize>(out: &mut [u8; N]) {
    const { assert!(N % 8 == 0) };
    let mut i = 0;
    while i + 8 <= N {
        let r = random_u64().to_le_bytes();
        let mut j = 0;
        while j < 8 {
            out[i + j] = r[j];
            j += 1;
        }
        i += 8;
    }
    // All zeros is not a valid id.
    out[0] |= ((out.iter().fold(0u8, |a, b| a | b) == 0) as u8) << 7;
}

#[inline(always)]
fn decide(trace_id: &[u8; 16], parent_sampled: Option<bool>) -> u8 {
    let mode = unsafe { core::ptr::read_volatile(&SAMPLER) };
    let bound = unsafe { core::ptr::read_volatile(&SAMPLER_BOUND) };
    if is_sampled(mode, bound, trace_id, parent_sampled) {
        FLAG_SAMPLED
    } else {
        0
    }
}

/// The span a new span is the child of.
pub struct Parent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// `parent::REMOTE` (a caller's `traceparent`) or `parent::LOCAL` (a span of this process).
    pub kind: u8,
    pub sampled: bool,
}

/// A new span's context: a child of `parent` in its trace, or the root of a new trace; sampled
/// as the sampler decides for it.
#[inline(always)]
pub fn new_context(out: &mut TraceContext, parent: Option<Parent>) {
    *out = TraceContext::empty();
    random_bytes(&mut out.span_id);
    match parent {
        Some(p) => {
            out.trace_id = p.trace_id;
            out.parent_span_id = p.span_id;
            out.parent = p.kind;
            out.flags = decide(&out.trace_id, Some(p.sampled));
        }
        None => {
            random_bytes(&mut out.trace_id);
            out.flags = decide(&out.trace_id, None);
        }
    }
}

/// The server request whose context `interface` (a `context.Context`: itab, data) is, or
/// derives from through the context types the probes know; `bias` is the executable's load bias.
#[inline(always)]
pub fn request_of_context(
    pid: u32,
    interface: [u64; 2],
    offsets: &GoOffsets,
    bias: u64,
) -> Option<TraceContext> {
    let [mut itab, mut data] = interface;
    for _ in 0..MAX_CONTEXT_HOPS {
        if data == 0 {
            return None;
        }
        let index = context_index(&ContextKey::new(pid, data));
        if let Some(entry) = index.and_then(|index| CONTEXTS.get(index)) {
            if entry.check == ContextEntry::check_of(&entry.key, &entry.trace) {
                return Some(entry.trace);
            }
        }
        // Which known context type this is: where its parent context is in it.
        let mut parent_at = ABSENT;
        for kind in 0..CONTEXT_TYPES {
            let known = offsets.context_itabs[kind];
            if known != ABSENT && itab == known.wrapping_add(bias) {
                parent_at = offsets.context_parents[kind];
            }
        }
        if parent_at == ABSENT {
            return None;
        }
        let mut next = [0u64; 2];
        if !read_words(&mut next, data.wrapping_add(parent_at)) {
            return None;
        }
        [itab, data] = next;
    }
    None
}
