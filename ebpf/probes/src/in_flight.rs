//! What is in flight on each goroutine: server requests between the entry probe and the
//! request-end probe, and client calls between their start and their return.
//!
//! Each lives in a small set-associative table (an array; a goroutine's key hashes to a set of
//! `GOROUTINE_WAYS` slots): the verifier turns an array lookup into a few inline instructions,
//! where a hash map costs a helper call, a hash and a bucket walk, and its update and delete a
//! lock and a free list, on every request. A small table stays in cache. A goroutine whose set is
//! full of other goroutines' unfinished ones goes to an LRU hash map instead, so a full set costs
//! time, not the request.
//!
//! A slot stays with its goroutine after the end, marked finished, and is reused in place by that
//! goroutine's next request or call, or claimed by another goroutine of the same set. Claims use
//! plain stores (kernels before 5.12 have no compare-and-swap in BPF): if two CPUs claim one free
//! slot at the same moment, the check word (`GoroutineSlot::holds`) makes a mixed slot nobody's:
//! the loser's end (or both, when their stores interleaved) counts as an end without a start
//! rather than report one's fields with the other's.
use aya_ebpf::macros::map;
use aya_ebpf::maps::{Array, LruHashMap};
use http_autoinstrument_common::{
    flags, ClientCall, ClientCallSlot, GoroutineKey, GoroutineSlot, InFlightRequest, InFlightSlot,
    SlotValue, GOROUTINE_SLOTS, GOROUTINE_WAYS,
};

#[map]
static IN_FLIGHT: Array<InFlightSlot> = Array::with_max_entries(GOROUTINE_SLOTS, 0);

/// Requests whose table slot was taken. An LRU, so entries of goroutines that are gone (and of
/// handlers that never returned) are evicted rather than filling the map.
#[map]
static IN_FLIGHT_OVERFLOW: LruHashMap<GoroutineKey, InFlightRequest> =
    LruHashMap::with_max_entries(4096, 0);

#[map]
static CLIENT_CALLS: Array<ClientCallSlot> = Array::with_max_entries(GOROUTINE_SLOTS, 0);

/// Calls whose table slot was taken, as `IN_FLIGHT_OVERFLOW`.
#[map]
static CLIENT_CALLS_OVERFLOW: LruHashMap<GoroutineKey, ClientCall> =
    LruHashMap::with_max_entries(8192, 0);

/// A table by goroutine: its slots and its overflow map.
pub trait Table {
    type Value: SlotValue + 'static;
    fn slots() -> &'static Array<GoroutineSlot<Self::Value>>;
    fn overflow() -> &'static LruHashMap<GoroutineKey, Self::Value>;
    /// Whether `new` is `recorded` started again rather than a new one (see `begin`).
    fn is_reentry(recorded: &Self::Value, new: &Self::Value) -> bool;
}

pub struct Requests;

impl Table for Requests {
    type Value = InFlightRequest;

    #[inline(always)]
    fn slots() -> &'static Array<InFlightSlot> {
        &IN_FLIGHT
    }

    #[inline(always)]
    fn overflow() -> &'static LruHashMap<GoroutineKey, InFlightRequest> {
        &IN_FLIGHT_OVERFLOW
    }

    /// Go's stack-growth path re-enters the function from the top for the same call: keep the
    /// first start time. A request marked panicked is over, even if Go reuses its address.
    #[inline(always)]
    fn is_reentry(recorded: &InFlightRequest, new: &InFlightRequest) -> bool {
        recorded.request == new.request && recorded.flags & flags::PANICKED as u64 == 0
    }
}

pub struct Calls;

impl Table for Calls {
    type Value = ClientCall;

    #[inline(always)]
    fn slots() -> &'static Array<ClientCallSlot> {
        &CLIENT_CALLS
    }

    #[inline(always)]
    fn overflow() -> &'static LruHashMap<GoroutineKey, ClientCall> {
        &CLIENT_CALLS_OVERFLOW
    }

    /// The call's start looks for its own re-entry before it builds the call (`client`).
    #[inline(always)]
    fn is_reentry(_recorded: &ClientCall, _new: &ClientCall) -> bool {
        false
    }
}

/// Records `value` as the goroutine's request or call in flight: in the goroutine's own slot of
/// its set if it has one, else in the first finished slot, else in the hash map. False when the
/// goroutine has this one in flight already (`T::is_reentry`), which stays as it was. Not
/// inlined: the entry probe's stack would pass the kernel's 512 bytes
/// (`every_program_fits_the_kernels_stack`).
#[inline(never)]
pub fn begin<T: Table>(key: &GoroutineKey, value: &T::Value) -> bool {
    let first = GoroutineSlot::<T::Value>::first_slot(key);
    let mut free: Option<*mut GoroutineSlot<T::Value>> = None;
    for way in 0..GOROUTINE_WAYS {
        let Some(slot) = T::slots().get_ptr_mut(first + way) else {
            continue;
        };
        let slot_ref = unsafe { &mut *slot };
        if slot_ref.is_for(key) {
            if T::is_reentry(&slot_ref.value, value) {
                return false;
            }
            claim(slot_ref, key, value);
            return true;
        }
        if free.is_none() && slot_ref.value.is_finished() {
            free = Some(slot);
        }
    }
    if let Some(slot) = free {
        claim(unsafe { &mut *slot }, key, value);
        return true;
    }
    match T::overflow().get_ptr_mut(key) {
        Some(old) => {
            let old = unsafe { &mut *old };
            if T::is_reentry(old, value) {
                return false;
            }
            // The slot of this goroutine's previous one (finished, or killed by a panic).
            *old = *value;
            true
        }
        None => T::overflow().insert(key, value, 0).is_ok(),
    }
}

#[inline(always)]
fn claim<V: SlotValue>(slot: &mut GoroutineSlot<V>, key: &GoroutineKey, value: &V) {
    slot.key = *key;
    slot.value = *value;
    // Last, so a slot whose claim was interleaved with another does not check out.
    slot.check = GoroutineSlot::check_of(key, value);
}

/// The goroutine's request or call in flight, if one was recorded and its end has not taken it.
#[inline(always)]
pub fn find<T: Table>(key: &GoroutineKey) -> Option<*mut T::Value> {
    let first = GoroutineSlot::<T::Value>::first_slot(key);
    for way in 0..GOROUTINE_WAYS {
        if let Some(slot) = T::slots().get_ptr_mut(first + way) {
            let slot = unsafe { &mut *slot };
            if slot.holds(key) {
                return Some(&mut slot.value);
            }
        }
    }
    let value = T::overflow().get_ptr_mut(key)?;
    (!unsafe { (*value).is_finished() }).then_some(value)
}
