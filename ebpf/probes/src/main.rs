//! Uprobes on Go's net/http: one hit when `serverHandler.ServeHTTP` starts, one when the request
//! ends, and nothing else on the request path. Where a request ends is the agent's choice
//! (`inspect::RequestEnd` in the agent): on entry to the function net/http calls on the same
//! goroutine once the handler has returned, or on ServeHTTP's RETs.
//!
//! The entry probe remembers the request per goroutine with its trace context (the caller's, from
//! its `traceparent`, or a new trace) under its `context.Context` too, where the client calls its
//! handler makes find their parent (`client`); the request-end probe reads the request and the
//! response writer (still alive at that point) into one fixed-size event in the ring buffer. A probe on `runtime.gopanic` only fires when a program panics, so it costs normal
//! requests nothing: it keeps a copy of the event of a handler that panics, which the agent emits
//! if the request never ends.
// Built for BPF; on the host (clippy, `cargo check --workspace`) it is an ordinary program so
// that its code is checked there too.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// Written for the verifier, not for clippy: keys go to maps by reference and remainders are
// spelled out, which keeps the generated BPF as it was checked.
#![allow(
    clippy::needless_borrows_for_generic_args,
    clippy::manual_is_multiple_of
)]

mod client;
mod go;
mod header;
mod in_flight;
mod trace;

use aya_ebpf::{
    bindings::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel_buf,
        generated::bpf_get_attach_cookie,
    },
    macros::{map, uprobe},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::ProbeContext,
    EbpfContext,
};
use http_autoinstrument_common::{
    cookie_parts, cookie_transport, counter, flags, parent, parse_traceparent, BinaryConfig,
    ContextKey, GoOffsets, GoroutineKey, HttpServerEvent, InFlightRequest, ABSENT,
    EVENT_RECORD_BYTES, FLAG_SAMPLED, MAX_BINARIES, TRACEPARENT_COPY,
};

use go::{read_bytes, read_u64, Window, WINDOW_WORDS};

/// What the probes know of each traced executable, by slot, written by the agent before it
/// attaches them. A probe finds its executable's slot in its attach cookie: an array lookup of a
/// few inline instructions, and no knowledge of the process, so the first request of a process
/// the agent has not seen yet is read like any other.
#[map]
static BINARIES: Array<BinaryConfig> = Array::with_max_entries(MAX_BINARIES, 0);

/// The executable a probe fired in: its offsets, its slot, and its load bias (where its code
/// was loaded minus where it was linked: 0 unless it is position-independent).
struct Binary {
    offsets: &'static GoOffsets,
    slot: u32,
    bias: u64,
    /// The client transport the probe sits in (`transport::X_NET` from its cookie).
    transport: u64,
}

#[inline(always)]
fn binary_of(ctx: &ProbeContext) -> Option<Binary> {
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    let (slot, address) = cookie_parts(cookie);
    let config = BINARIES.get(slot)?;
    if config.configured == 0 {
        return None;
    }
    // A uprobe's handlers see the instruction pointer at the probed instruction.
    let ip = unsafe { (*ctx.regs).rip };
    Some(Binary {
        offsets: &config.offsets,
        slot,
        bias: ip.wrapping_sub(address),
        transport: cookie_transport(cookie),
    })
}

/// Events of handlers that panicked, kept until the request ends (the panic was recovered:
/// the entry is dropped) or the agent sweeps it (the panic killed the request).
#[map]
static PANICKED: LruHashMap<GoroutineKey, HttpServerEvent> = LruHashMap::with_max_entries(1024, 0);

/// Finished requests for the agent. The agent sets the size when it loads the probes
/// (`attach::EVENTS_RING_BYTES`); this one is only the object file's default.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Scratch space for building a panicked request's event: too large for the 512-byte BPF stack.
#[map]
static SCRATCH: PerCpuArray<HttpServerEvent> = PerCpuArray::with_max_entries(1, 0);

/// Copies of the request, the response writer and the header map's header while an event is
/// filled (see `go::Window`); per CPU, as a probe runs to the end on the CPU it started on.
#[map]
static WINDOWS: PerCpuArray<[u64; WINDOW_WORDS]> = PerCpuArray::with_max_entries(3, 0);
const REQUEST_WINDOW: u32 = 0;
const WRITER_WINDOW: u32 = 1;
const MAP_WINDOW: u32 = 2;

/// One group of the header map's entries (see `header`), per CPU like `WINDOWS`.
#[map]
static HEADER_GROUP: PerCpuArray<[u64; header::GROUP_WORDS]> = PerCpuArray::with_max_entries(1, 0);
/// What the header search found so far, per CPU: kept in map memory, which the verifier does not
/// track, so that paths differing only in what was found are one path to it (see `header`).
#[map]
static FOUND_HEADERS: PerCpuArray<header::Found> = PerCpuArray::with_max_entries(1, 0);

/// The request being recorded by the entry probe, and a `traceparent` value copied for parsing:
/// too large for the BPF stack with the rest.
#[map]
static ENTRY_SCRATCH: PerCpuArray<InFlightRequest> = PerCpuArray::with_max_entries(1, 0);
#[map]
static TRACEPARENT_TEXT: PerCpuArray<[u8; TRACEPARENT_COPY]> = PerCpuArray::with_max_entries(1, 0);

/// Unread bytes in the ring buffer at which a submit wakes the agent. Below it the agent is not
/// woken (it polls on a timer), so a busy service pays one wakeup per batch, not per request.
#[no_mangle]
static WAKEUP_BYTES: u64 = 512 * EVENT_RECORD_BYTES;

/// 0 only under `--probe-mode bookkeeping`: events are sent without reading the traced process,
/// so that the benchmarks can split the probes' run time into bookkeeping (clock, in-flight
/// table, ring buffer) and reading the request and the response. One load and a branch per
/// request otherwise.
#[no_mangle]
static READ_REQUEST: u8 = 1;

/// Whether this event, `unread` bytes waiting with it, takes the backlog past a multiple of
/// `WAKEUP_BYTES`. Only such an event wakes the agent: one that is already behind is draining, and
/// waking it on every event would cost the service a wakeup per request until it catches up.
/// (Two CPUs submitting at once may both miss a crossing; the next multiple, or the agent's poll
/// timer, then wakes it.)
#[inline(always)]
fn crosses_wakeup_level(unread: u64) -> bool {
    let wakeup = unsafe { core::ptr::read_volatile(&WAKEUP_BYTES) };
    wakeup != 0
        && unread >= wakeup
        && unread / wakeup != (unread - EVENT_RECORD_BYTES.min(unread)) / wakeup
}

#[inline(always)]
fn bump(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
fn current_pid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// Go's ABIInternal keeps the running goroutine's `g` in R14.
#[inline(always)]
fn goroutine_key(ctx: &ProbeContext, pid: u32) -> GoroutineKey {
    GoroutineKey {
        pid,
        _pad: 0,
        g: unsafe { (*ctx.regs).r14 },
    }
}

#[uprobe]
pub fn serve_http_entry(ctx: ProbeContext) -> u32 {
    bump(counter::ENTRY_HITS);
    let pid = current_pid();
    let key = goroutine_key(&ctx, pid);
    let regs = unsafe { &*ctx.regs };
    // ServeHTTP(sh serverHandler, rw ResponseWriter, req *Request): rw is an interface (itab in
    // RBX, data in RCX), req is in RDI.
    let request = regs.rdi;
    let (Some(binary), Some(record)) = (binary_of(&ctx), ENTRY_SCRATCH.get_ptr_mut(0)) else {
        bump(counter::UNCONFIGURED_HITS);
        return 0;
    };
    let record = unsafe { &mut *record };
    record.start_monotonic_ns = unsafe { bpf_ktime_get_ns() };
    record.request = request;
    record.writer_itab = regs.rbx;
    record.writer_data = regs.rcx;
    record.flags = 0;
    record.user_agent = 0;
    record.user_agent_len = 0;
    record.context = 0;
    let caller = if unsafe { core::ptr::read_volatile(&READ_REQUEST) } != 0 {
        read_request_start(record, binary.offsets)
    } else {
        None
    };
    // A valid `traceparent` makes the request the caller's child; else it starts a trace.
    trace::new_context(
        &mut record.trace,
        caller.map(|tp| trace::Parent {
            trace_id: tp.trace_id,
            span_id: tp.parent_id,
            kind: parent::REMOTE,
            sampled: tp.flags & FLAG_SAMPLED != 0,
        }),
    );
    // The probe sits after Go's stack check, so each call hits it once; where it had to go on
    // the check itself, a call that grew the stack hits it twice, and only the first counts.
    if in_flight::begin::<in_flight::Requests>(&key, record) && record.context != 0 {
        let context = ContextKey::new(pid, record.context);
        trace::remember_context(&context, &record.trace);
    }
    0
}

/// What the request's start tells: where its `User-Agent` is, its context, and its caller's
/// trace context (a valid, single `traceparent`).
#[inline(always)]
fn read_request_start(
    record: &mut InFlightRequest,
    offsets: &GoOffsets,
) -> Option<http_autoinstrument_common::Traceparent> {
    let (Some(request_buf), Some(text)) = (
        WINDOWS.get_ptr_mut(REQUEST_WINDOW),
        TRACEPARENT_TEXT.get_ptr_mut(0),
    ) else {
        return None;
    };
    let request = Window::read(
        unsafe { &mut *request_buf },
        record.request,
        offsets.request_window_words,
    );
    record.context = request.u64(go::field(offsets.request_ctx, 8)).unwrap_or(0);
    let found = search_headers(request.u64(offsets.request_header).unwrap_or(0), offsets)?;
    (record.user_agent, record.user_agent_len) = found.user_agent;
    let (ptr, len) = found.traceparent;
    if found.traceparents != 1 || ptr == 0 {
        return None;
    }
    let text = unsafe { &mut *text };
    let copy = if len > TRACEPARENT_COPY as u64 {
        TRACEPARENT_COPY as u32
    } else {
        len as u32
    };
    if copy == 0
        || unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_user(
                text.as_mut_ptr() as *mut _,
                copy,
                ptr as *const _,
            )
        } != 0
    {
        return None;
    }
    parse_traceparent(text, len)
}

/// Searches the header map at `map` for `User-Agent` and `Traceparent` (see `header`), in the
/// per-CPU buffers.
#[inline(always)]
fn search_headers(map: u64, offsets: &GoOffsets) -> Option<&'static header::Found> {
    let (Some(map_buf), Some(group_buf), Some(found)) = (
        WINDOWS.get_ptr_mut(MAP_WINDOW),
        HEADER_GROUP.get_ptr_mut(0),
        FOUND_HEADERS.get_ptr_mut(0),
    ) else {
        return None;
    };
    let found = unsafe { &mut *found };
    found.clear();
    header::find_headers(
        found,
        map,
        unsafe { &mut *map_buf },
        unsafe { &mut *group_buf },
        offsets,
    );
    Some(found)
}

/// The request's end. Its registers are not read (they belong to whichever function it is on):
/// everything comes from what the entry probe kept. A function entered twice for one request (Go's
/// stack growth restarts it) finds its request already sent the second time, which counts as a
/// return without entry.
#[uprobe]
pub fn request_end(ctx: ProbeContext) -> u32 {
    bump(counter::REQUEST_END_HITS);
    let pid = current_pid();
    let Some(binary) = binary_of(&ctx) else {
        bump(counter::UNCONFIGURED_HITS);
        return 0;
    };
    let key = goroutine_key(&ctx, pid);
    let Some(slot) = in_flight::find::<in_flight::Requests>(&key) else {
        bump(counter::ENDS_WITHOUT_ENTRY);
        return 0;
    };
    let in_flight = unsafe { *slot };
    // Finished: the slot waits for the goroutine's next request (see `in_flight`).
    unsafe {
        (*slot).request = 0;
        (*slot).flags = 0;
    }
    if in_flight.context != 0 {
        trace::forget_context(&ContextKey::new(pid, in_flight.context));
    }
    // The handler panicked and recovered by itself: the request completes normally, unless it
    // ran on for so long that the agent already took its panicked event and reported it (one
    // request, one span).
    if in_flight.flags & flags::PANICKED as u64 != 0 && PANICKED.remove(&key).is_err() {
        bump(counter::ENDS_AFTER_PANIC_REPORTED);
        return 0;
    }

    if !in_flight.trace.is_sampled() {
        bump(counter::NOT_SAMPLED);
        return 0;
    }
    let Some(mut entry) = EVENTS.reserve::<HttpServerEvent>(0) else {
        bump(counter::EVENTS_LOST);
        return 0;
    };
    let event = entry.as_mut_ptr();
    unsafe { fill_event(&mut *event, &in_flight, &binary, pid, 0) };
    entry.submit(wakeup_flags());
    bump(counter::EVENTS_SUBMITTED);
    0
}

/// How a submit wakes the agent (see `crosses_wakeup_level`).
#[inline(always)]
fn wakeup_flags() -> u64 {
    if crosses_wakeup_level(EVENTS.query(0 /* BPF_RB_AVAIL_DATA */)) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Fires only when the program panics. If the panicking goroutine is serving a request, keep that
/// request's event as it is now: after a panic the request may never end.
#[uprobe]
pub fn gopanic_entry(ctx: ProbeContext) -> u32 {
    let pid = current_pid();
    let Some(binary) = binary_of(&ctx) else {
        return 0;
    };
    let key = goroutine_key(&ctx, pid);
    let Some(slot) = in_flight::find::<in_flight::Requests>(&key) else {
        return 0;
    };
    bump(counter::PANICS);
    let in_flight = unsafe { *slot };
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    unsafe {
        send_earlier_panic(&key, &in_flight, scratch);
        fill_event(&mut *scratch, &in_flight, &binary, pid, flags::PANICKED);
        // Marked only once its event is kept: the request's end looks for the event when marked.
        if PANICKED.insert(&key, &*scratch, 0).is_ok() {
            (*slot).flags |= flags::PANICKED as u64;
        }
    }
    0
}

/// The goroutine may still have the event of an earlier request of its own that panicked and
/// never returned: Go gives a new goroutine the `g` of one that has exited, and so the key. That
/// request is over (its goroutine is serving another), so its event goes to the agent now rather
/// than being overwritten by this one. Taken from the map first, as the agent's sweep does, so only
/// one of them sends it. `scratch` is only a staging copy here.
#[inline(always)]
unsafe fn send_earlier_panic(
    key: &GoroutineKey,
    in_flight: &InFlightRequest,
    scratch: *mut HttpServerEvent,
) {
    let Some(earlier) = PANICKED.get_ptr(key) else {
        return;
    };
    if unsafe { (*earlier).start_monotonic_ns } == in_flight.start_monotonic_ns {
        return; // the same request, panicking again after a recovery
    }
    let staging = unsafe {
        core::slice::from_raw_parts_mut(
            scratch.cast::<u8>(),
            core::mem::size_of::<HttpServerEvent>(),
        )
    };
    if unsafe { bpf_probe_read_kernel_buf(earlier.cast(), staging) }.is_err()
        || PANICKED.remove(key).is_err()
    {
        return;
    }
    match EVENTS.output::<HttpServerEvent>(unsafe { &*scratch }, 0) {
        Ok(()) => bump(counter::EVENTS_SUBMITTED),
        Err(_) => bump(counter::EVENTS_LOST),
    }
}

/// The floor for overhead measurements: a bare counting probe pair on the same entry and
/// request-end offsets (`--probe-mode count`). Whatever the full probes cost above this is the agent's own.
#[uprobe]
pub fn count_entry(_ctx: ProbeContext) -> u32 {
    bump(counter::ENTRY_HITS);
    0
}

#[uprobe]
pub fn count_request_end(_ctx: ProbeContext) -> u32 {
    bump(counter::REQUEST_END_HITS);
    0
}

/// The floor of client calls: bare counting probes on the client's start and return.
#[uprobe]
pub fn count_client_start(_ctx: ProbeContext) -> u32 {
    bump(counter::CLIENT_ENTRY_HITS);
    0
}

#[uprobe]
pub fn count_client_return(_ctx: ProbeContext) -> u32 {
    bump(counter::CLIENT_RETURN_HITS);
    0
}

/// Reads the request and the response writer into `event`. Every field the agent reads is
/// written, so nothing of an earlier event in a reused ring-buffer slot is taken for this one (in
/// a request-line event the agent ignores `method.bytes`). `_pad` is left as it is: zeroing five
/// bytes took a call to a byte loop (`memset`), and nothing reads them.
#[inline(always)]
fn fill_event(
    event: &mut HttpServerEvent,
    in_flight: &InFlightRequest,
    binary: &Binary,
    pid: u32,
    extra_flags: u8,
) {
    let offsets = binary.offsets;
    event.start_monotonic_ns = in_flight.start_monotonic_ns;
    event.end_monotonic_ns = unsafe { bpf_ktime_get_ns() };
    event.pid = pid;
    event.binary = binary.slot as u16;
    event.trace = in_flight.trace;
    event.status = 0;
    event.response_body_bytes = -1;
    event.server_port = 0;
    event.user_agent.len = 0;
    if unsafe { core::ptr::read_volatile(&READ_REQUEST) } == 0 {
        event.request_content_length = -1;
        event.proto_major = 0;
        event.proto_minor = 0;
        event.method.len = 0;
        event.target.len = 0;
        event.host.len = 0;
        event.remote_addr.len = 0;
        event.route.len = 0;
        event.flags = extra_flags | flags::UNKNOWN_WRITER;
        return;
    }
    let (Some(request_buf), Some(writer_buf)) = (
        WINDOWS.get_ptr_mut(REQUEST_WINDOW),
        WINDOWS.get_ptr_mut(WRITER_WINDOW),
    ) else {
        event.flags = extra_flags | flags::UNKNOWN_WRITER;
        return;
    };
    let request = Window::read(
        unsafe { &mut *request_buf },
        in_flight.request,
        offsets.request_window_words,
    );
    event.request_content_length = request
        .u64(offsets.request_content_length)
        .unwrap_or(u64::MAX) as i64;
    event.proto_major = request.u64(offsets.request_proto_major).unwrap_or(0) as u8;
    event.proto_minor = request.u64(offsets.request_proto_minor).unwrap_or(0) as u8;

    let mut event_flags = extra_flags;
    if request.u64(offsets.request_tls).unwrap_or(0) != 0 {
        event_flags |= flags::TLS;
    }

    let (method, method_len) = request.go_string_header(offsets.request_method);
    let (target, target_len) = request.go_string_header(offsets.request_request_uri);
    if method != 0 && method_len != 0 && target == method + method_len + 1 {
        // HTTP/1: both are slices of the request line (`GET /users/7 HTTP/1.1`): one read.
        read_bytes(&mut event.target, method, method_len + 1 + target_len);
        event.method.len = method_len;
        event_flags |= flags::REQUEST_LINE;
    } else {
        read_bytes(&mut event.method, method, method_len);
        read_bytes(&mut event.target, target, target_len);
    }
    request.go_string(&mut event.host, offsets.request_host);
    request.go_string(&mut event.remote_addr, offsets.request_remote_addr);
    if offsets.request_pattern != ABSENT {
        request.go_string(&mut event.route, offsets.request_pattern);
    } else {
        // Go 1.22: the matched pattern is `*pattern`, its text a string inside.
        let pattern = request.u64(offsets.request_pat).unwrap_or(0);
        let (ptr, len) = (
            read_u64(pattern, offsets.pattern_str).unwrap_or(0),
            read_u64(pattern, go::field(offsets.pattern_str, 8)).unwrap_or(0),
        );
        read_bytes(&mut event.route, ptr, len);
    }
    read_bytes(
        &mut event.user_agent,
        in_flight.user_agent,
        in_flight.user_agent_len,
    );

    let writer_data = in_flight.writer_data;
    let is_itab = |itab: u64, link_time: u64| {
        link_time != ABSENT && itab == link_time.wrapping_add(binary.bias)
    };
    if is_itab(in_flight.writer_itab, offsets.response_itab) {
        // HTTP/1.x: *http.response.
        let writer = Window::read(
            unsafe { &mut *writer_buf },
            writer_data,
            offsets.response_window_words,
        );
        event.status = writer.u64(offsets.response_status).unwrap_or(0) as u16;
        event.response_body_bytes = writer.u64(offsets.response_written).unwrap_or(u64::MAX) as i64;
        if !go::has_port(&event.host) {
            let conn = writer.u64(offsets.response_conn).unwrap_or(0);
            event.server_port = go::local_port(conn, offsets.conn_rwc, offsets, binary.bias);
        }
    } else if is_itab(in_flight.writer_itab, offsets.h2_writer_itab) {
        // HTTP/2: *http2responseWriter -> *http2responseWriterState.
        event_flags |= flags::HTTP2;
        let state = read_u64(writer_data, offsets.h2_writer_rws).unwrap_or(0);
        let state_window = Window::read(
            unsafe { &mut *writer_buf },
            state,
            offsets.h2_rws_window_words,
        );
        event.status = state_window.u64(offsets.h2_rws_status).unwrap_or(0) as u16;
        event.response_body_bytes = state_window
            .u64(offsets.h2_rws_wrote_bytes)
            .unwrap_or(u64::MAX) as i64;
        if !go::has_port(&event.host) {
            let stream = state_window.u64(offsets.h2_rws_stream).unwrap_or(0);
            let server_conn = read_u64(stream, offsets.h2_stream_sc).unwrap_or(0);
            event.server_port = go::local_port(
                server_conn,
                offsets.h2_server_conn_conn,
                offsets,
                binary.bias,
            );
        }
    } else {
        event_flags |= flags::UNKNOWN_WRITER;
    }
    event.flags = event_flags;
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
