//! Requests between the entry probe and the request-end probe, by goroutine.
//!
//! Most requests live in a small set-associative table (an array; a goroutine's key hashes to a
//! set of `IN_FLIGHT_WAYS` slots): the verifier turns an array lookup into a few inline
//! instructions, where a hash map costs a helper call, a hash and a bucket walk, twice per request;
//! a small table stays in cache. A goroutine whose set is full of other goroutines' unfinished requests goes to
//! an LRU hash map instead, so a full set costs time, not the request.
//!
//! A slot stays with its goroutine after the return, marked finished (`request` 0), and is reused
//! in place by that goroutine's next request or claimed by another goroutine of the same set.
//! Claims use plain stores (kernels before 5.12 have no compare-and-swap in BPF): if two CPUs
//! claim one free slot at the same moment, the check word (`InFlightSlot::holds`) makes a mixed
//! slot nobody's: the loser's return (or both, when their stores interleaved) counts as a return
//! without entry rather than report one request's fields with the other's.
use aya_ebpf::macros::map;
use aya_ebpf::maps::{Array, LruHashMap};
use http_autoinstrument_common::{
    flags, GoroutineKey, InFlightRequest, InFlightSlot, IN_FLIGHT_SLOTS, IN_FLIGHT_WAYS,
};

#[map]
static IN_FLIGHT: Array<InFlightSlot> = Array::with_max_entries(IN_FLIGHT_SLOTS, 0);

/// Requests whose table slot was taken. An LRU, so entries of goroutines that are gone (and of
/// handlers that never returned) are evicted rather than filling the map.
#[map]
static IN_FLIGHT_OVERFLOW: LruHashMap<GoroutineKey, InFlightRequest> =
    LruHashMap::with_max_entries(4096, 0);

/// Records `request` as the goroutine's request in flight (entry probe): in the goroutine's own
/// slot of its set if it has one, else in the first finished slot, else in the hash map. False
/// when the goroutine has this request in flight already (an entry probe on a stack check that
/// Go ran twice for one call), which stays as it was. Not inlined: the entry probe's stack
/// would pass the kernel's 512 bytes (`every_program_fits_the_kernels_stack`).
#[inline(never)]
pub fn begin(key: &GoroutineKey, request: &InFlightRequest) -> bool {
    let first = InFlightSlot::first_slot(key);
    let mut free: Option<*mut InFlightSlot> = None;
    for way in 0..IN_FLIGHT_WAYS {
        let Some(slot) = IN_FLIGHT.get_ptr_mut(first + way) else {
            continue;
        };
        let slot_ref = unsafe { &mut *slot };
        if slot_ref.is_for(key) {
            if is_reentry(&slot_ref.request, request) {
                return false;
            }
            claim(slot_ref, key, request);
            return true;
        }
        if free.is_none() && slot_ref.request.request == 0 {
            free = Some(slot);
        }
    }
    if let Some(slot) = free {
        claim(unsafe { &mut *slot }, key, request);
        return true;
    }
    match IN_FLIGHT_OVERFLOW.get_ptr_mut(key) {
        Some(old) => {
            let old = unsafe { &mut *old };
            if is_reentry(old, request) {
                return false;
            }
            // The slot of this goroutine's previous request (finished, or killed by a panic).
            *old = *request;
            true
        }
        None => IN_FLIGHT_OVERFLOW.insert(key, request, 0).is_ok(),
    }
}

#[inline(always)]
fn claim(slot: &mut InFlightSlot, key: &GoroutineKey, request: &InFlightRequest) {
    slot.key = *key;
    slot.request = *request;
    // Last, so a slot whose claim was interleaved with another does not check out.
    slot.check = InFlightSlot::check_of(key, request);
}

/// Go's stack-growth path re-enters the function from the top for the same call: keep the first
/// start time. A request marked panicked is over, even if Go reuses its address.
#[inline(always)]
fn is_reentry(recorded: &InFlightRequest, new: &InFlightRequest) -> bool {
    recorded.request == new.request && recorded.flags & flags::PANICKED as u64 == 0
}

/// The goroutine's request in flight, if the entry probe recorded one that is not finished.
#[inline(always)]
pub fn find(key: &GoroutineKey) -> Option<*mut InFlightRequest> {
    let first = InFlightSlot::first_slot(key);
    for way in 0..IN_FLIGHT_WAYS {
        if let Some(slot) = IN_FLIGHT.get_ptr_mut(first + way) {
            let slot = unsafe { &mut *slot };
            if slot.holds(key) {
                return Some(&mut slot.request);
            }
        }
    }
    let request = IN_FLIGHT_OVERFLOW.get_ptr_mut(key)?;
    (unsafe { (*request).request } != 0).then_some(request)
}
