//! Uprobes on net/http's client: `(*Transport).roundTrip`, which every request made with
//! `http.Client`, `http.Transport` or `http.DefaultClient` goes through (HTTP/1.1, HTTPS, and the
//! bundled HTTP/2, which it calls), one hit when it starts and one when it returns: the response's
//! headers have arrived, or the call failed.
//!
//! The same programs sit on golang.org/x/net/http2's `(*Transport).RoundTrip`, whose arguments
//! and results are roundTrip's (a `*Transport`, a `*Request`; `*Response`, `error`); their
//! attach cookie says which transport they are on. Given to net/http with
//! `http2.ConfigureTransport`, x/net's Transport runs inside net/http's roundTrip, on the same
//! goroutine: that nested call is ignored, its start and its return alike, and net/http's
//! return ends the one call.
//!
//! The start finds the call's parent: the server request whose context the call's request
//! carries (`Request.ctx`, or a context derived from it), else the request the same goroutine
//! is serving; it then gives the call its trace context. The return writes the call's event.
//!
//! With propagation on, one more probe per call writes the call's context into its request as it
//! leaves: `client_header_write` for HTTP/1.x, `client_h2_header_write` for HTTP/2.
use aya_ebpf::{
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_get_attach_cookie, bpf_probe_write_user},
    },
    macros::{map, uprobe},
    maps::{LruHashMap, PerCpuArray},
    programs::ProbeContext,
    EbpfContext,
};
use http_autoinstrument_common::{
    client_flags, cookie_transport, counter, format_traceparent_hpack, format_traceparent_line,
    parent, transport, write_hex, ClientCall, ContextKey, HttpClientEvent, TraceContext,
    TRACEPARENT_COPY, TRACEPARENT_HPACK_LEN, TRACEPARENT_LEN, TRACEPARENT_LINE_LEN,
    TRACEPARENT_LINE_PREFIX,
};

use crate::go::{field, read_u64, read_words, Window};
use crate::in_flight::{Calls, Requests};
use crate::{
    binary_of, bump, current_pid, goroutine_key, in_flight, search_headers, trace, wakeup_flags,
    EVENTS, REQUEST_WINDOW, TRACEPARENT_TEXT, WINDOWS, WRITER_WINDOW,
};

/// Which transport the probe that fired sits in (its cookie's `COOKIE_X_NET`).
#[inline(always)]
fn transport_of(ctx: &ProbeContext) -> u64 {
    cookie_transport(unsafe { bpf_get_attach_cookie(ctx.as_ptr()) })
}

#[uprobe]
pub fn client_call_start(ctx: ProbeContext) -> u32 {
    call_start(&ctx, false)
}

/// `client_call_start` with propagation on: it also keeps the call's context for the header
/// write probes (`OUTGOING`), and replaces a `traceparent` that a proxy copied from its own
/// request (see `replace_copied`) before the transport encodes the headers. It writes into the
/// process, so it is a program of its own: a kernel in lockdown refuses to load it.
#[uprobe]
pub fn client_call_start_propagating(ctx: ProbeContext) -> u32 {
    call_start(&ctx, true)
}

#[inline(always)]
fn call_start(ctx: &ProbeContext, propagating: bool) -> u32 {
    bump(counter::CLIENT_ENTRY_HITS);
    let pid = current_pid();
    let key = goroutine_key(ctx, pid);
    // roundTrip(t *Transport, req *Request): req in RBX.
    let request = unsafe { (*ctx.regs).rbx };
    let transport = transport_of(ctx);
    if let Some(call) = in_flight::find::<Calls>(&key) {
        let call = unsafe { &*call };
        if call.request == request && call.transport == transport {
            return 0; // entered again by Go's stack growth
        }
        if transport == transport::X_NET && call.transport == transport::NET_HTTP {
            return 0; // inside net/http's call: x/net's Transport serving it
        }
    }
    let Some(binary) = binary_of(ctx) else {
        bump(counter::UNCONFIGURED_HITS);
        return 0;
    };
    let offsets = binary.offsets;
    let mut interface = [0u64; 2];
    let context_at = field(offsets.request_ctx, 0);
    let by_context = if request != 0
        && context_at != http_autoinstrument_common::ABSENT
        && read_words(&mut interface, request.wrapping_add(context_at))
    {
        trace::request_of_context(pid, interface, offsets, binary.bias)
    } else {
        None
    };
    // A call made with a context unrelated to the request (context.Background()) on the
    // goroutine serving it.
    let parent = by_context
        .or_else(|| in_flight::find::<Requests>(&key).map(|served| unsafe { (*served).trace }));
    let Some(scratch) = START_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let StartScratch { call, outgoing } = unsafe { &mut *scratch };
    *call = ClientCall {
        start_monotonic_ns: unsafe { bpf_ktime_get_ns() },
        request,
        headers: 0,
        goid: 0,
        trace: TraceContext::empty(),
        transport,
    };
    trace::new_context(
        &mut call.trace,
        parent.as_ref().map(|p| trace::Parent {
            trace_id: p.trace_id,
            span_id: p.span_id,
            kind: parent::LOCAL,
            sampled: p.is_sampled(),
        }),
    );
    if propagating {
        // Where `client_header_write` finds the call's context: by the request's header map,
        // the one value it has in hand where it writes.
        call.headers = read_u64(request, offsets.request_header).unwrap_or(0);
        if call.headers != 0 {
            *outgoing = Outgoing {
                trace: call.trace,
                incoming_parent: match &parent {
                    Some(p) if p.parent == parent::REMOTE => p.parent_span_id,
                    _ => [0; 8],
                },
                own_header: own_header::UNKNOWN,
            };
            if outgoing.incoming_parent != [0; 8] {
                // A request that came with a context: its handler may be a proxy that copied it.
                outgoing.own_header = match search_headers(call.headers, offsets) {
                    Some(found) if found.traceparents == 0 => own_header::NONE,
                    Some(found)
                        if found.traceparents == 1
                            && replace_copied(outgoing, found.traceparent) =>
                    {
                        bump(counter::PROPAGATED);
                        bump(counter::PROPAGATION_REPLACED);
                        own_header::REPLACED
                    }
                    Some(_) => own_header::APPLICATION,
                    None => own_header::UNKNOWN,
                };
            }
            let _ = OUTGOING.insert(&ContextKey::new(pid, call.headers), outgoing, 0);
            // HTTP/2 writes the request's headers on a goroutine this one starts: it finds the
            // call by its creator's id.
            if offsets.h2_request_writer_known() {
                let goid = read_u64(key.g, offsets.g_goid).unwrap_or(0);
                if goid != 0 {
                    call.goid = goid;
                    let _ = H2_CALLS.insert(&ContextKey::new(pid, goid), &call.headers, 0);
                }
            }
        }
    }
    in_flight::begin::<Calls>(&key, call);
    0
}

/// The call being recorded and its context for the write probes, per CPU: on the stack they
/// would leave the header search too little of the kernel's 512 bytes.
#[map]
static START_SCRATCH: PerCpuArray<StartScratch> = PerCpuArray::with_max_entries(1, 0);

#[repr(C)]
struct StartScratch {
    call: ClientCall,
    outgoing: Outgoing,
}

/// Calls in flight whose context is to go into their request, by the request's `Header` map.
/// Kept until the call returns: a request the transport retries is written again.
#[map]
static OUTGOING: LruHashMap<ContextKey, Outgoing> = LruHashMap::with_max_entries(8192, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct Outgoing {
    trace: TraceContext,
    /// The caller's span id from the `traceparent` the call's server request came in with; zeros
    /// when it came with none. An outgoing `traceparent` naming it was copied from the incoming
    /// request (a proxy does that), not made by the application.
    incoming_parent: [u8; 8],
    /// What the call's start found of a `traceparent` in the request (`own_header`).
    own_header: u64,
}

/// A request's own `traceparent`, as the call's start found it: not looked for (the write probe
/// looks), none, the application's, or a proxy's copy, replaced.
mod own_header {
    pub const UNKNOWN: u64 = 0;
    pub const NONE: u64 = 1;
    pub const APPLICATION: u64 = 2;
    pub const REPLACED: u64 = 3;
}

/// Whether the request already has a `traceparent`, so the write probes add none: as the call's
/// start found it, else from a search of the request's header map `headers`. Counted here when it
/// is the application's. `None` when the header map cannot be read.
#[inline(always)]
fn has_own_header(
    context: &Outgoing,
    headers: u64,
    offsets: &http_autoinstrument_common::GoOffsets,
) -> Option<bool> {
    let has = match context.own_header {
        own_header::NONE => false,
        own_header::REPLACED => return Some(true), // counted where it was replaced
        own_header::APPLICATION => true,
        _ => search_headers(headers, offsets)?.traceparents != 0,
    };
    if has {
        bump(counter::PROPAGATION_APP_HEADER);
    }
    Some(has)
}

/// Adds `Traceparent: 00-<trace>-<call's span>-<flags>` to an HTTP/1.x request as net/http
/// writes it: on `(*Request).write`'s call of `Header.writeSubset` with the request's own
/// headers, the request line, `Host` and `User-Agent` are in the connection's `bufio.Writer`
/// and the line goes right after them, in the buffer's free space, with `n` moved past it.
/// A `traceparent` the request already has stays the only one: the application's own (an SDK's)
/// is left alone; one a proxy copied from the request it serves was overwritten at the call's
/// start (`replace_copied`). Nothing is written when the writer is not a `*bufio.Writer` or has failed, when the
/// buffer has no room for the whole line, or when a layout the write relies on is not known for
/// the binary (`GoOffsets::request_writer_known`).
#[uprobe]
pub fn client_header_write(ctx: ProbeContext) -> u32 {
    bump(counter::HEADER_WRITE_HITS);
    let pid = current_pid();
    // h.writeSubset(w io.Writer, exclude, trace): h in RAX, w's itab and data in RBX and RCX.
    let regs = unsafe { &*ctx.regs };
    let (headers, writer_itab, writer) = (regs.rax, regs.rbx, regs.rcx);
    // Read in place: a copy would take stack the header search needs (512 bytes in all).
    let Some(context) = (unsafe { OUTGOING.get(&ContextKey::new(pid, headers)) }) else {
        return 0;
    };
    let Some(binary) = binary_of(&ctx) else {
        bump(counter::UNCONFIGURED_HITS);
        return 0;
    };
    let offsets = binary.offsets;
    if !offsets.request_writer_known()
        || writer_itab != offsets.bufio_writer_itab.wrapping_add(binary.bias)
    {
        return 0;
    }
    if has_own_header(context, headers, offsets) != Some(false) {
        return 0;
    }
    // bufio.Writer{err error, buf []byte, n int, ...}: a writer that failed writes nothing more.
    let mut buf = [0u64; 2];
    let (Some(err), Some(n)) = (
        read_u64(writer, offsets.bufio_writer_err),
        read_u64(writer, offsets.bufio_writer_n),
    ) else {
        return 0;
    };
    if err != 0 || !read_words(&mut buf, writer.wrapping_add(offsets.bufio_writer_buf)) {
        return 0;
    }
    let [data, len] = buf;
    if data == 0 || n > len || len - n < TRACEPARENT_LINE_LEN as u64 {
        bump(counter::PROPAGATION_NO_ROOM);
        return 0;
    }
    let Some(line) = TRACEPARENT_LINE.get_ptr_mut(0) else {
        return 0;
    };
    let line = unsafe { &mut *line };
    format_traceparent_line(&context.trace, line);
    let written = n + TRACEPARENT_LINE_LEN as u64;
    let ok = write_user(
        data.wrapping_add(n),
        line.as_ptr(),
        TRACEPARENT_LINE_LEN as u32,
    ) && write_user(
        writer.wrapping_add(offsets.bufio_writer_n),
        &written as *const u64 as *const u8,
        8,
    );
    if ok {
        bump(counter::PROPAGATED);
    }
    0
}

/// Overwrites the `traceparent` value at `value` (pointer, length) with the call's context when
/// it is the one the call's server request came in with (the same trace and caller: a proxy
/// copied it); true when it did. In place, the same length, before the transport encodes the
/// headers (HPACK would not keep the length), so the proxy's spans sit on the trace's path.
#[inline(always)]
fn replace_copied(context: &Outgoing, value: (u64, u64)) -> bool {
    let (ptr, len) = value;
    if len != TRACEPARENT_LEN as u64 || context.incoming_parent == [0; 8] {
        return false;
    }
    let (Some(text), Some(line)) = (
        TRACEPARENT_TEXT.get_ptr_mut(0),
        TRACEPARENT_LINE.get_ptr_mut(0),
    ) else {
        return false;
    };
    let (text, line) = unsafe { (&mut *text, &mut *line) };
    let read = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(
            text.as_mut_ptr() as *mut _,
            TRACEPARENT_LEN as u32,
            ptr as *const _,
        )
    };
    if read != 0 {
        return false;
    }
    // The incoming value as the caller wrote it, `00-<trace>-<caller's span>-`, compared with
    // what the request holds word by word: no parse, and no branch per byte for the verifier.
    // The line is the call's, its span id swapped for the caller's while comparing.
    let prefix = TRACEPARENT_LINE_PREFIX.len();
    let span_hex = prefix + SPAN_ID_AT..prefix + SPAN_ID_AT + 16;
    format_traceparent_line(&context.trace, line);
    write_hex(&context.incoming_parent, &mut line[span_hex.clone()]);
    if !same_value_but_flags(text, line) {
        return false;
    }
    write_hex(&context.trace.span_id, &mut line[span_hex]);
    let value = unsafe { line.as_ptr().add(prefix) };
    write_user(ptr, value, TRACEPARENT_LEN as u32)
}

/// 0 only under `--probe-mode propagation-dry-run`: `write_user` writes nothing and says it
/// wrote. Set at load, so the verifier sees the helper call unreachable and a kernel in lockdown
/// loads the programs.
#[no_mangle]
static WRITE_USER: u8 = 1;

/// Writes the `len` bytes at `from` into the traced process at `to`; true when written.
#[inline(always)]
fn write_user(to: u64, from: *const u8, len: u32) -> bool {
    if unsafe { core::ptr::read_volatile(&WRITE_USER) } == 0 {
        return true;
    }
    unsafe { bpf_probe_write_user(to as *mut _, from as *const _, len) == 0 }
}

/// Where a `traceparent` value's parent (span) id starts: after `00-`, 32 hex digits and `-`.
const SPAN_ID_AT: usize = 36;

/// Whether the value in `text` and the one in `line` (after its `Traceparent: `) agree on their
/// first 53 bytes: everything but the flags.
#[inline(always)]
fn same_value_but_flags(text: &[u8; TRACEPARENT_COPY], line: &[u8; TRACEPARENT_LINE_LEN]) -> bool {
    let word = |bytes: &[u8], at: usize| unsafe {
        core::ptr::read_unaligned(bytes.as_ptr().add(at) as *const u64)
    };
    let prefix = TRACEPARENT_LINE_PREFIX.len();
    let mut diff = 0;
    for k in 0..6 {
        diff |= word(text, 8 * k) ^ word(line, prefix + 8 * k);
    }
    // Bytes 48..53 of the value: the last word's first five.
    diff |= (word(text, 48) ^ word(line, prefix + 48)) & 0xff_ffff_ffff;
    diff == 0
}

/// The header line being written, per CPU.
#[map]
static TRACEPARENT_LINE: PerCpuArray<[u8; TRACEPARENT_LINE_LEN]> =
    PerCpuArray::with_max_entries(1, 0);

/// Calls in flight that may go out over HTTP/2, by the id of their goroutine: their request's
/// `Header` map, under which `OUTGOING` has their context.
#[map]
static H2_CALLS: LruHashMap<ContextKey, u64> = LruHashMap::with_max_entries(8192, 0);

/// HTTP/2 frame types and flags the write checks (RFC 9113, section 6).
const FRAME_HEADER_LEN: u64 = 9;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_CONTINUATION: u8 = 0x9;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
/// The smallest frame size a peer may allow (`SETTINGS_MAX_FRAME_SIZE`'s initial value): a frame
/// the write makes longer stays within it, whatever the peer set.
const MIN_MAX_FRAME_SIZE: u64 = 16_384;
/// Frames the walk through the buffer follows before it gives up.
const MAX_FRAMES: usize = 4;
/// Words of a `bufio.Writer` copied at once: its `err`, `buf` and `n` are in the first five.
const BUFIO_WRITER_WORDS: u64 = 8;

/// Adds `traceparent` to an HTTP/2 request made with net/http's client. `(*ClientConn).writeHeaders`
/// (the bundled copy of x/net/http2, or net/http/internal/http2) writes the request's HEADERS frame
/// (and any CONTINUATION frames) into the connection's `bufio.Writer`, then calls its `Flush`: the
/// probe sits on that call, where the buffer ends with the frame and the writer is the call's
/// receiver (RAX). It runs on the goroutine the call's `roundTrip` started (`go cs.doRequest`),
/// whose `parentGoid` names the call's goroutine (`H2_CALLS`).
///
/// The buffer is walked frame by frame from its start; only when the walk ends exactly at `n` on
/// a HEADERS or CONTINUATION frame that ends the header block (unpadded) is the field appended to
/// that frame (HPACK blocks are a concatenation, `format_traceparent_hpack`), its 24-bit length
/// raised and `n` moved past it. Not when the request has its own `traceparent`, when the buffer
/// or the frame has no room, or when a layout the write relies on is not known for the binary
/// (`GoOffsets::h2_request_writer_known`).
#[uprobe]
pub fn client_h2_header_write(ctx: ProbeContext) -> u32 {
    bump(counter::HEADER_WRITE_HITS);
    let pid = current_pid();
    let regs = unsafe { &*ctx.regs };
    let (writer, g) = (regs.rax, regs.r14);
    let Some(binary) = binary_of(&ctx) else {
        bump(counter::UNCONFIGURED_HITS);
        return 0;
    };
    let offsets = binary.offsets;
    if !offsets.h2_request_writer_known() {
        return 0;
    }
    let Some(parent_goid) = read_u64(g, offsets.g_parent_goid) else {
        return 0;
    };
    let Some(&headers) = (unsafe { H2_CALLS.get(&ContextKey::new(pid, parent_goid)) }) else {
        return 0;
    };
    let Some(context) = (unsafe { OUTGOING.get(&ContextKey::new(pid, headers)) }) else {
        return 0;
    };
    if has_own_header(context, headers, offsets) != Some(false) {
        return 0;
    }
    // The writer's fields in one read, each checked on its own: LLVM merged the `Option`s of
    // separate reads into flags in a register that Linux 6.1's verifier took for a pointer.
    let Some(window) = WINDOWS.get_ptr_mut(WRITER_WINDOW) else {
        return 0;
    };
    let fields = Window::read(unsafe { &mut *window }, writer, BUFIO_WRITER_WORDS);
    if fields.u64(offsets.bufio_writer_err) != Some(0) {
        return 0; // a writer that failed writes nothing more
    }
    let Some(n) = fields.u64(offsets.bufio_writer_n) else {
        return 0;
    };
    // `buf` is a slice: its pointer, then its length.
    let Some(data) = fields.u64(offsets.bufio_writer_buf) else {
        return 0;
    };
    let Some(capacity) = fields.u64(field(offsets.bufio_writer_buf, 8)) else {
        return 0;
    };
    if data == 0 || n > capacity {
        return 0;
    }
    // The frames in the buffer, from its start: the last one must end exactly at `n`.
    let mut at = 0u64;
    let mut last = 0u64;
    let mut frame = [0u8; FRAME_HEADER_LEN as usize];
    for _ in 0..MAX_FRAMES {
        if at + FRAME_HEADER_LEN > n {
            break;
        }
        let read = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_user(
                frame.as_mut_ptr() as *mut _,
                FRAME_HEADER_LEN as u32,
                data.wrapping_add(at) as *const _,
            )
        };
        if read != 0 {
            return 0;
        }
        last = at;
        at += FRAME_HEADER_LEN + frame_length(&frame);
        if at >= n {
            break;
        }
    }
    let length = frame_length(&frame);
    let (kind, flags) = (frame[3], frame[4]);
    let ends_block = flags & FLAG_END_HEADERS != 0
        && (kind == FRAME_CONTINUATION || (kind == FRAME_HEADERS && flags & FLAG_PADDED == 0));
    if at != n || !ends_block {
        return 0;
    }
    let field_len = TRACEPARENT_HPACK_LEN as u64;
    if capacity - n < field_len || length + field_len > MIN_MAX_FRAME_SIZE {
        bump(counter::PROPAGATION_NO_ROOM);
        return 0;
    }
    let Some(field) = TRACEPARENT_FIELD.get_ptr_mut(0) else {
        return 0;
    };
    let field = unsafe { &mut *field };
    format_traceparent_hpack(&context.trace, field);
    // Its own array: a pointer into the middle of an aligned one is computed with `|`, which
    // the verifier refuses on a pointer.
    let raised = length + field_len;
    let new_length = [(raised >> 16) as u8, (raised >> 8) as u8, raised as u8];
    let written = n + field_len;
    // The field first, past `n` where nothing reads it yet; then the frame's length; `n` last.
    let ok = write_user(
        data.wrapping_add(n),
        field.as_ptr(),
        TRACEPARENT_HPACK_LEN as u32,
    ) && write_user(data.wrapping_add(last), new_length.as_ptr(), 3)
        && write_user(
            writer.wrapping_add(offsets.bufio_writer_n),
            &written as *const u64 as *const u8,
            8,
        );
    if ok {
        bump(counter::PROPAGATED);
    }
    0
}

/// A frame's 24-bit length, from its header's first three bytes (big-endian).
#[inline(always)]
fn frame_length(header: &[u8; FRAME_HEADER_LEN as usize]) -> u64 {
    (header[0] as u64) << 16 | (header[1] as u64) << 8 | header[2] as u64
}

/// The HPACK field being written, per CPU.
#[map]
static TRACEPARENT_FIELD: PerCpuArray<[u8; TRACEPARENT_HPACK_LEN]> =
    PerCpuArray::with_max_entries(1, 0);

#[uprobe]
pub fn client_call_return(ctx: ProbeContext) -> u32 {
    bump(counter::CLIENT_RETURN_HITS);
    let pid = current_pid();
    let key = goroutine_key(&ctx, pid);
    let Some(slot) = in_flight::find::<Calls>(&key) else {
        bump(counter::ENDS_WITHOUT_ENTRY);
        return 0;
    };
    let call = unsafe { *slot };
    let Some(binary) = binary_of(&ctx) else {
        bump(counter::UNCONFIGURED_HITS);
        return 0;
    };
    if call.transport != binary.transport {
        // x/net's Transport returning to net/http's roundTrip, whose own return ends the call.
        return 0;
    }
    // Finished: the slot waits for the goroutine's next call.
    unsafe { (*slot).request = 0 };
    if call.headers != 0 {
        let _ = OUTGOING.remove(&ContextKey::new(pid, call.headers));
    }
    if call.goid != 0 {
        let _ = H2_CALLS.remove(&ContextKey::new(pid, call.goid));
    }
    if !call.trace.is_sampled() {
        bump(counter::NOT_SAMPLED);
        return 0;
    }
    // roundTrip returns (*Response, error): RAX, and the error's itab and data in RBX, RCX.
    let regs = unsafe { &*ctx.regs };
    let (response, error_itab) = (regs.rax, regs.rbx);
    let Some(mut entry) = EVENTS.reserve::<HttpClientEvent>(0) else {
        bump(counter::EVENTS_LOST);
        return 0;
    };
    let event = unsafe { &mut *entry.as_mut_ptr() };
    let offsets = binary.offsets;
    event.start_monotonic_ns = call.start_monotonic_ns;
    event.end_monotonic_ns = unsafe { bpf_ktime_get_ns() };
    event.pid = pid;
    event.binary = binary.slot as u16;
    event.trace = call.trace;
    event.status = 0;
    event.proto_major = 0;
    event.proto_minor = 0;
    event.flags = 0;
    event.error_itab = 0;
    if error_itab != 0 {
        event.flags = client_flags::ERROR;
        event.error_itab = error_itab.wrapping_sub(binary.bias);
    } else if let (true, Some(buffer)) = (response != 0, WINDOWS.get_ptr_mut(REQUEST_WINDOW)) {
        // Copied with one read; the buffer is the request's below, once these are out of it.
        let response = Window::read(
            unsafe { &mut *buffer },
            response,
            offsets.client_response_window_words,
        );
        event.status = response.u64(offsets.client_response_status).unwrap_or(0) as u16;
        event.proto_major = response
            .u64(offsets.client_response_proto_major)
            .unwrap_or(0) as u8;
        event.proto_minor = response
            .u64(offsets.client_response_proto_minor)
            .unwrap_or(0) as u8;
    }
    event.method.len = 0;
    event.scheme.len = 0;
    event.host.len = 0;
    event.path.len = 0;
    event.query.len = 0;
    if let (Some(request_buf), Some(url_buf)) = (
        WINDOWS.get_ptr_mut(REQUEST_WINDOW),
        WINDOWS.get_ptr_mut(WRITER_WINDOW),
    ) {
        let request = Window::read(
            unsafe { &mut *request_buf },
            call.request,
            offsets.request_window_words,
        );
        request.go_string(&mut event.method, offsets.request_method);
        // The URL's user information is never read: credentials stay in the process.
        let url = request.u64(offsets.request_url).unwrap_or(0);
        let url = Window::read(unsafe { &mut *url_buf }, url, offsets.url_window_words);
        url.go_string(&mut event.scheme, offsets.url_scheme);
        url.go_string(&mut event.host, offsets.url_host);
        url.go_string(&mut event.path, offsets.url_path);
        url.go_string(&mut event.query, offsets.url_raw_query);
    }
    entry.submit(wakeup_flags());
    bump(counter::EVENTS_SUBMITTED);
    0
}
