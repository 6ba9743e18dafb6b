//! Trace contexts in the probes: new ids, the sampling decision where a trace starts, and the
//! parent of a client call, found through its request's `context.Context`.
use aya_ebpf::{helpers::bpf_get_prandom_u32, macros::map, maps::LruHashMap};
use http_autoinstrument_common::{
    is_sampled, ContextKey, GoOffsets, TraceContext, ABSENT, CONTEXT_TYPES, FLAG_SAMPLED,
};

use crate::go::read_words;

/// The trace context of every server request in flight, by its `Request.ctx` value: where a
/// client call made with that context, or one derived from it, finds its parent. Written when a
/// request starts, removed when it ends (Go reuses the memory of a context that is gone).
#[map]
pub static CONTEXTS: LruHashMap<ContextKey, TraceContext> = LruHashMap::with_max_entries(16384, 0);

/// The sampler (`sampler::*` of the common crate) and its ratio bound, set by the agent at load.
#[no_mangle]
static SAMPLER: u64 = http_autoinstrument_common::sampler::PARENT_BASED;
#[no_mangle]
static SAMPLER_BOUND: u64 = 1 << 63;

/// How many contexts a client call's context is followed through to a server request's: a
/// handler's context is rarely more than a few derivations (values, timeouts) from the request's.
const MAX_CONTEXT_HOPS: usize = 16;

#[inline(always)]
fn random_bytes<const N: usize>(out: &mut [u8; N]) {
    let mut i = 0;
    while i + 4 <= N {
        let r = unsafe { bpf_get_prandom_u32() }.to_le_bytes();
        out[i] = r[0];
        out[i + 1] = r[1];
        out[i + 2] = r[2];
        out[i + 3] = r[3];
        i += 4;
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
        if let Some(found) = unsafe { CONTEXTS.get(&ContextKey::new(pid, data)) } {
            return Some(*found);
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
