//! Layouts shared by the eBPF probes (kernel side) and the agent (user side).
//!
//! Every type here is `#[repr(C)]`, `Copy` and free of pointers, so the probes can write it into
//! the ring buffer or read it from a map and the agent can reinterpret the same bytes. A test at the
//! bottom pins each size: changing a layout is a deliberate act on both sides at once.
#![no_std]

mod trace;

pub use trace::{
    format_traceparent, format_traceparent_hpack, format_traceparent_line, is_sampled, parent,
    parse_traceparent, ratio_bound, sampler, write_hex, TraceContext, Traceparent, FLAG_SAMPLED,
    TRACEPARENT_COPY, TRACEPARENT_HPACK_LEN, TRACEPARENT_HPACK_NAME, TRACEPARENT_LEN,
    TRACEPARENT_LINE_LEN, TRACEPARENT_LINE_PREFIX,
};

/// Offset value meaning "this field does not exist in this binary" (e.g. `Request.Pattern`
/// before Go 1.23). Probes skip reads whose offset is `ABSENT`.
pub const ABSENT: u64 = u64::MAX;

pub const METHOD_CAP: usize = 16;
/// The request target: path and query (`/users/7?page=2`), or in a request-line event the method,
/// a space and the target (see `flags::REQUEST_LINE`).
pub const TARGET_CAP: usize = 768;
pub const HOST_CAP: usize = 128;
pub const REMOTE_ADDR_CAP: usize = 64;
pub const USER_AGENT_CAP: usize = 256;
pub const ROUTE_CAP: usize = 128;
/// An outgoing request's URL scheme, path and query (`url.URL.Scheme`, `Path`, `RawQuery`).
pub const SCHEME_CAP: usize = 8;
pub const PATH_CAP: usize = 512;
pub const QUERY_CAP: usize = 256;

/// A Go string copied out of the traced process, at most `N` bytes of it.
///
/// `len` is the length of the string in the process, so `len > N` means the copy was truncated:
/// the agent marks such values instead of silently shortening them.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BoundedStr<const N: usize> {
    pub len: u64,
    pub bytes: [u8; N],
}

impl<const N: usize> BoundedStr<N> {
    /// The bytes that were copied: the first `min(len, N)` bytes.
    pub fn copied(&self) -> &[u8] {
        let n = if self.len > N as u64 {
            N
        } else {
            self.len as usize
        };
        &self.bytes[..n]
    }

    pub fn is_truncated(&self) -> bool {
        self.len > N as u64
    }
}

/// `HttpServerEvent::flags` bits.
pub mod flags {
    /// `Request.TLS` was set: the request came over HTTPS.
    pub const TLS: u8 = 1;
    /// The ResponseWriter was the HTTP/2 one (`*http2responseWriter`).
    pub const HTTP2: u8 = 2;
    /// The handler panicked: the goroutine called `runtime.gopanic` before returning.
    pub const PANICKED: u8 = 4;
    /// The ResponseWriter was of a type the probe does not know; status and size are unknown.
    pub const UNKNOWN_WRITER: u8 = 8;
    /// `target` holds `METHOD TARGET` and `method` only the method's length: HTTP/1 keeps
    /// `Request.Method` and `Request.RequestURI` side by side in the request line, so the probe
    /// copies both with one read.
    pub const REQUEST_LINE: u8 = 16;
}

/// One served HTTP request, written by the request-end probe.
///
/// Times are `bpf_ktime_get_ns` (CLOCK_MONOTONIC); the agent converts them to wall-clock time
/// with one offset measured at start.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HttpServerEvent {
    pub start_monotonic_ns: u64,
    pub end_monotonic_ns: u64,
    /// `Request.ContentLength`: -1 when unknown (chunked), 0 with no body.
    pub request_content_length: i64,
    /// Response body bytes written by the handler; -1 when unknown.
    pub response_body_bytes: i64,
    pub pid: u32,
    /// HTTP status code; 0 when the handler wrote nothing (Go then sends 200).
    pub status: u16,
    /// Local TCP port of the connection; 0 when unknown.
    pub server_port: u16,
    pub proto_major: u8,
    pub proto_minor: u8,
    pub flags: u8,
    pub _pad: u8,
    /// The executable's slot (see [`BinaryConfig`]): who made the event when its process has
    /// already exited by the time the agent reads it.
    pub binary: u16,
    pub _pad2: [u8; 2],
    pub trace: TraceContext,
    pub method: BoundedStr<METHOD_CAP>,
    /// `Request.RequestURI`: the target as the client sent it (path and query, percent-encoded).
    pub target: BoundedStr<TARGET_CAP>,
    pub host: BoundedStr<HOST_CAP>,
    pub remote_addr: BoundedStr<REMOTE_ADDR_CAP>,
    pub user_agent: BoundedStr<USER_AGENT_CAP>,
    /// The ServeMux pattern that matched, e.g. `GET /users/{id}`: `Request.Pattern` (Go 1.23+)
    /// or `Request.pat.str` (Go 1.22).
    pub route: BoundedStr<ROUTE_CAP>,
}

/// `HttpClientEvent::flags` bits.
pub mod client_flags {
    /// The call failed (`roundTrip` returned an error): `error_itab` names its type.
    pub const ERROR: u8 = 1;
}

/// One request made with net/http's client (`Transport.roundTrip`), from its start to the
/// response's headers or the error, written when the call returns. Its size tells it from an
/// [`HttpServerEvent`] in the ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HttpClientEvent {
    pub start_monotonic_ns: u64,
    pub end_monotonic_ns: u64,
    /// The link-time address of the returned error's itab (as `error`): the agent names its
    /// type from the binary. 0 without an error.
    pub error_itab: u64,
    pub pid: u32,
    /// The executable's slot (see [`BinaryConfig`]).
    pub binary: u16,
    /// `Response.StatusCode`; 0 without a response.
    pub status: u16,
    pub proto_major: u8,
    pub proto_minor: u8,
    pub flags: u8,
    pub _pad: [u8; 5],
    pub trace: TraceContext,
    pub method: BoundedStr<METHOD_CAP>,
    pub scheme: BoundedStr<SCHEME_CAP>,
    /// `URL.Host`: host and port as the request names them.
    pub host: BoundedStr<HOST_CAP>,
    pub path: BoundedStr<PATH_CAP>,
    pub query: BoundedStr<QUERY_CAP>,
}

/// Bytes one event takes in the ring buffer: the record and the kernel's 8-byte header (the
/// larger, server, event: what sizes the ring buffer).
pub const EVENT_RECORD_BYTES: u64 = core::mem::size_of::<HttpServerEvent>() as u64 + 8;

/// How a Go map stores its entries; decides how the probe searches `Request.Header`.
pub mod map_layout {
    /// Go <= 1.23: `runtime.hmap` with 8-slot buckets.
    pub const BUCKETS: u64 = 0;
    /// Go >= 1.24: `internal/runtime/maps.Map` (Swiss tables).
    pub const SWISS: u64 = 1;
}

/// Struct field offsets and type addresses of one traced executable, found by the agent from the
/// binary (DWARF, or the generated table of layouts per Go release) and stored in its
/// [`BinaryConfig`].
///
/// Every offset is in bytes from the start of the struct named in its field name; `ABSENT` where the
/// binary has no such field. Addresses (`*_itab`) are link-time addresses: the probes add the
/// load bias of a position-independent executable, which they compute from where they fire.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoOffsets {
    pub request_method: u64,
    pub request_request_uri: u64,
    pub request_proto_major: u64,
    pub request_proto_minor: u64,
    pub request_header: u64,
    pub request_content_length: u64,
    pub request_host: u64,
    pub request_remote_addr: u64,
    pub request_tls: u64,
    /// `Request.Pattern` (Go 1.23+).
    pub request_pattern: u64,
    /// Go 1.22, which has no `Request.Pattern`: `Request.pat`, a `*pattern`, and the offset of
    /// the pattern's text in it (`pattern.str`).
    pub request_pat: u64,
    pub pattern_str: u64,
    /// `Request.ctx` (a `context.Context`) and `Request.URL` (a `*url.URL`).
    pub request_ctx: u64,
    pub request_url: u64,
    pub url_scheme: u64,
    pub url_host: u64,
    pub url_path: u64,
    pub url_raw_query: u64,
    /// `Response` (the client's): `StatusCode`, `ProtoMajor`, `ProtoMinor`.
    pub client_response_status: u64,
    pub client_response_proto_major: u64,
    pub client_response_proto_minor: u64,
    /// The `context.Context` types whose parent context the probes follow (`cancelCtx`,
    /// `valueCtx`, ...; see `CONTEXT_TYPES`): each one's itab and the offset of its parent
    /// `Context` interface in the value the interface points to. `ABSENT` where not in the
    /// binary.
    pub context_itabs: [u64; CONTEXT_TYPES],
    pub context_parents: [u64; CONTEXT_TYPES],

    /// Address of the itab `*net/http.response` as `net/http.ResponseWriter` (HTTP/1.x).
    pub response_itab: u64,
    pub response_status: u64,
    pub response_written: u64,
    pub response_conn: u64,
    pub conn_rwc: u64,

    /// Address of the itab `*net/http.http2responseWriter` as `net/http.ResponseWriter`.
    pub h2_writer_itab: u64,
    pub h2_writer_rws: u64,
    pub h2_rws_status: u64,
    pub h2_rws_wrote_bytes: u64,
    pub h2_rws_stream: u64,
    pub h2_stream_sc: u64,
    pub h2_server_conn_conn: u64,

    /// Address of the itab `*crypto/tls.Conn` as `net.Conn`.
    pub tls_conn_itab: u64,
    pub tls_conn_conn: u64,
    /// Address of the itab `*net.TCPConn` as `net.Conn`.
    pub tcp_conn_itab: u64,
    /// Offset of `fd *netFD` inside `net.TCPConn` (through its embedded `net.conn`).
    pub tcp_conn_fd: u64,
    pub net_fd_laddr: u64,
    pub tcp_addr_port: u64,

    /// Context propagation into HTTP/1.x requests (see the probes' `client_header_write`): the
    /// itab `*bufio.Writer` as `io.Writer`, and `bufio.Writer`'s `err` (an interface), `buf` (a
    /// slice) and `n`. `ABSENT` where not verified for the binary: then nothing is written.
    pub bufio_writer_itab: u64,
    pub bufio_writer_err: u64,
    pub bufio_writer_buf: u64,
    pub bufio_writer_n: u64,

    /// Context propagation into HTTP/2 requests (see the probes' `client_h2_header_write`): where
    /// `runtime.g` keeps the goroutine's id (`goid`) and its creator's (`parentGoid`), which
    /// lead from the goroutine writing a request's headers to the call that started it.
    pub g_goid: u64,
    pub g_parent_goid: u64,

    /// One of `map_layout::*`.
    pub map_layout: u64,
    /// Entries in a map: `hmap.count` (Go <= 1.23) or `Map.used` (Go >= 1.24).
    pub map_count: u64,
    /// Go <= 1.23: `hmap.B` and `hmap.buckets`.
    pub hmap_b: u64,
    pub hmap_buckets: u64,
    /// Go >= 1.24: `Map.dirPtr`, `Map.dirLen`, `table.groups` (its `data` pointer) and
    /// `groupsReference.lengthMask`.
    pub swiss_dir_ptr: u64,
    pub swiss_dir_len: u64,
    pub swiss_table_groups: u64,
    pub swiss_groups_length_mask: u64,

    /// Words of a `Request`, a `response`, an `http2responseWriterState`, a map header, a `URL`
    /// and a client's `Response` the probe copies with one read each: through the last field
    /// above that it reads of the struct, and no further (see `GoOffsets::set_window_words`).
    pub request_window_words: u64,
    pub response_window_words: u64,
    pub h2_rws_window_words: u64,
    pub map_window_words: u64,
    pub url_window_words: u64,
    pub client_response_window_words: u64,
}

/// How many `context.Context` types the probes walk through to find a request's parent span.
pub const CONTEXT_TYPES: usize = 6;

/// The most words the probe copies of one struct at once (the size of its buffers; a power of
/// two).
pub const WINDOW_WORDS: u64 = 64;

/// Words from a struct's start through the end of the last of `fields` (byte offsets of 8-byte
/// fields, or of a byte field, which a word covers too; `ABSENT` ones are skipped), at most
/// `WINDOW_WORDS`: fields further out are read one by one.
pub fn words_through(fields: &[u64]) -> u64 {
    let last = fields.iter().filter(|&&o| o != ABSENT).max();
    last.map_or(0, |o| (o / 8 + 1).min(WINDOW_WORDS))
}

impl GoOffsets {
    /// Whether every layout the `traceparent` write reads or writes in a client request is known
    /// for this binary (from its DWARF or the measured table): the header map it searches for
    /// the application's own value, and the connection's `bufio.Writer` (its itab and the fields
    /// it writes). Without all of them nothing is written into the process.
    pub fn request_writer_known(&self) -> bool {
        [
            self.request_header,
            self.map_layout,
            self.bufio_writer_itab,
            self.bufio_writer_err,
            self.bufio_writer_buf,
            self.bufio_writer_n,
        ]
        .iter()
        .all(|&offset| offset != ABSENT)
    }

    /// As [`request_writer_known`](Self::request_writer_known), for HTTP/2 requests: the header
    /// map, the `bufio.Writer` fields the write reads and moves (its itab is not needed: the
    /// probe sits on a call of `(*bufio.Writer).Flush`), and the goroutine ids.
    pub fn h2_request_writer_known(&self) -> bool {
        [
            self.request_header,
            self.map_layout,
            self.bufio_writer_err,
            self.bufio_writer_buf,
            self.bufio_writer_n,
            self.g_goid,
            self.g_parent_goid,
        ]
        .iter()
        .all(|&offset| offset != ABSENT)
    }

    /// Sets the `*_window_words` from the field offsets. A helper call to copy costs about the
    /// same for 8 bytes as for 256, so the probe copies each struct's fields with one read; but
    /// every line copied is a line of the traced process's heap that may not be in cache, so not
    /// past the last field it needs (figures in the commit that sized the windows).
    pub fn set_window_words(&mut self) {
        let string = |offset: u64| if offset == ABSENT { ABSENT } else { offset + 8 };
        self.request_window_words = words_through(&[
            string(self.request_method),
            string(self.request_request_uri),
            self.request_proto_major,
            self.request_proto_minor,
            self.request_header,
            self.request_content_length,
            string(self.request_host),
            string(self.request_remote_addr),
            self.request_tls,
            string(self.request_pattern),
            self.request_pat,
            string(self.request_ctx),
            self.request_url,
        ]);
        self.response_window_words = words_through(&[
            self.response_status,
            self.response_written,
            self.response_conn,
        ]);
        self.h2_rws_window_words = words_through(&[
            self.h2_rws_status,
            self.h2_rws_wrote_bytes,
            self.h2_rws_stream,
        ]);
        self.url_window_words = words_through(&[
            string(self.url_scheme),
            string(self.url_host),
            string(self.url_path),
            string(self.url_raw_query),
        ]);
        self.client_response_window_words = words_through(&[
            self.client_response_status,
            self.client_response_proto_major,
            self.client_response_proto_minor,
        ]);
        self.map_window_words = words_through(&[
            self.map_count,
            self.hmap_b,
            self.hmap_buckets,
            self.swiss_dir_ptr,
            self.swiss_dir_len,
        ]);
    }
}

/// Indexes into the per-CPU `COUNTERS` array. The agent sums them across CPUs and exports them.
pub mod counter {
    /// Entry probe hits, in any process the probe is attached to.
    pub const ENTRY_HITS: u32 = 0;
    /// Request-end probe hits.
    pub const REQUEST_END_HITS: u32 = 1;
    /// Events written to the ring buffer.
    pub const EVENTS_SUBMITTED: u32 = 2;
    /// Events lost because the ring buffer was full.
    pub const EVENTS_LOST: u32 = 3;
    /// Request ends with no recorded entry (entry evicted from the in-flight map, attached
    /// mid-call, a request-end function entered twice by Go's stack growth, or called without a
    /// handler, as for a 417 Expectation Failed).
    pub const ENDS_WITHOUT_ENTRY: u32 = 4;
    /// Hits of a probe whose executable's slot is not configured (never expected: the agent fills
    /// the slot before it attaches and frees it only after the last attachment is gone).
    pub const UNCONFIGURED_HITS: u32 = 5;
    /// Panics seen while a request was in flight on the panicking goroutine.
    pub const PANICS: u32 = 6;
    /// Requests whose handler recovered from a panic and returned only after the agent had
    /// given up waiting and reported them as panicked: not sent a second time.
    pub const ENDS_AFTER_PANIC_REPORTED: u32 = 7;
    /// Requests and calls whose trace the sampler dropped: no event was written.
    pub const NOT_SAMPLED: u32 = 8;
    /// Client call probe hits: the call's start, and its return.
    pub const CLIENT_ENTRY_HITS: u32 = 9;
    pub const CLIENT_RETURN_HITS: u32 = 10;
    /// Hits of the probe that writes `traceparent` into an HTTP/1.x request's headers, and what
    /// it did: written, or not because the application set its own, or not because the
    /// writer's buffer had no room for the line, or the value a proxy copied from its incoming
    /// request replaced in place by the call's.
    pub const HEADER_WRITE_HITS: u32 = 11;
    pub const PROPAGATED: u32 = 12;
    pub const PROPAGATION_APP_HEADER: u32 = 13;
    pub const PROPAGATION_NO_ROOM: u32 = 14;
    pub const PROPAGATION_REPLACED: u32 = 15;
    pub const COUNT: u32 = 16;
}

/// A goroutine of a process: whose request a probe is looking at. `g` pointers are reused by the
/// Go runtime, so a key is valid only between one entry and its return.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoroutineKey {
    pub pid: u32,
    pub _pad: u32,
    pub g: u64,
}

/// What the entry probe remembers for the request-end probe. The slot stays after the return, marked
/// finished (`request` 0), and the goroutine's next request reuses it in place: no map insert or
/// delete per request on a keep-alive connection.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct InFlightRequest {
    pub start_monotonic_ns: u64,
    /// `*http.Request`; 0 once the request-end probe has taken the request.
    pub request: u64,
    pub writer_itab: u64,
    pub writer_data: u64,
    pub flags: u64,
    /// Where the request's `User-Agent` value is (found with its `traceparent`, in one search of
    /// the headers when the request starts) and its length.
    pub user_agent: u64,
    pub user_agent_len: u64,
    /// `Request.ctx`'s value: the key of the request in `CONTEXTS`, where the calls its handler
    /// makes find their parent.
    pub context: u64,
    pub trace: TraceContext,
}

/// A context value of a process (`Request.ctx` of a request being served): the key of the
/// probes' table of server requests' trace contexts, which client calls made with that context
/// (or one derived from it) find their parent in.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextKey {
    pub pid: u32,
    pub _pad: u32,
    pub context: u64,
}

impl ContextKey {
    /// The key of the value at `address` in process `pid`.
    #[inline(always)]
    pub const fn new(pid: u32, address: u64) -> Self {
        ContextKey {
            pid,
            _pad: 0,
            context: address,
        }
    }
}

/// A client call between its start and its return.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ClientCall {
    pub start_monotonic_ns: u64,
    /// The outgoing `*http.Request`, and its `Header` map (0 when not propagating).
    pub request: u64,
    pub headers: u64,
    /// The calling goroutine's id, under which an HTTP/2 request's writer finds the call (0 when
    /// not propagating into HTTP/2 requests).
    pub goid: u64,
    pub trace: TraceContext,
    /// Whose probes started the call: [`transport::NET_HTTP`] or [`transport::X_NET`].
    pub transport: u64,
}

/// The client transports the probes sit in, as a client call records it.
pub mod transport {
    /// net/http's `(*Transport).roundTrip`.
    pub const NET_HTTP: u64 = 0;
    /// golang.org/x/net/http2's `(*Transport).RoundTrip`. net/http's roundTrip calls it for a
    /// transport set up with `http2.ConfigureTransport`: that nested call is part of the outer
    /// one, not a call of its own.
    pub const X_NET: u64 = 1;
}

/// Executables the probes can serve at once: the slots of their table of [`BinaryConfig`]s.
pub const MAX_BINARIES: u32 = 1024;

/// What the probes know about one executable, in its slot of their table. Every attachment of a
/// probe to that executable carries its slot in its attach cookie ([`probe_cookie`]), so a probe
/// that fires in a process the agent has not seen yet (a replica, a restart) knows where to read.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BinaryConfig {
    /// 1 once the agent has filled the slot; 0 while it is free.
    pub configured: u64,
    pub offsets: GoOffsets,
}

/// The attach cookie of a probe on `binary`'s instruction at link-time address `address`: the
/// slot in the high half, the address (Go links its code well below 4 GiB) in the low half. The
/// probe finds the executable's load bias as the difference between where it fired and
/// `address`: 0 for a fixed-address executable.
#[inline(always)]
pub const fn probe_cookie(binary: u32, address: u32) -> u64 {
    ((binary as u64) << 32) | address as u64
}

/// Marks the cookie of a client probe on golang.org/x/net/http2's Transport
/// ([`transport::X_NET`]); slots stay far below this bit ([`MAX_BINARIES`]).
pub const COOKIE_X_NET: u64 = 1 << 63;
const _: () = assert!((MAX_BINARIES as u64) << 32 < COOKIE_X_NET);

/// The client transport a probe's cookie names ([`transport`]).
#[inline(always)]
pub const fn cookie_transport(cookie: u64) -> u64 {
    if cookie & COOKIE_X_NET != 0 {
        transport::X_NET
    } else {
        transport::NET_HTTP
    }
}

/// The slot and the link-time address of a probe's cookie (see [`probe_cookie`]).
#[inline(always)]
pub const fn cookie_parts(cookie: u64) -> (u32, u64) {
    (
        ((cookie & !COOKIE_X_NET) >> 32) as u32,
        cookie & 0xffff_ffff,
    )
}

/// The set of heap address `address` of process `pid` in a table of `sets` sets (a power of two).
/// Go's heap addresses are aligned and often a fixed stride apart, which a bare multiply maps onto
/// few sets; MurmurHash3's finaliser (shift, multiply, shift) spreads them.
#[inline(always)]
pub fn set_of(address: u64, pid: u32, sets: u32) -> u32 {
    let mut x = address ^ ((pid as u64) << 40);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> (64 - sets.trailing_zeros())) as u32
}

/// The probes' tables by goroutine (requests in flight, client calls in flight):
/// `GOROUTINE_SETS` sets of `GOROUTINE_WAYS` slots, a goroutine's request or call in a slot of
/// the set its key hashes to. Goroutines that find every slot of their set taken by other
/// goroutines' go to a hash map instead.
///
/// Small on purpose (512 slots of about two cache lines), so the lines and pages it spans stay
/// in the caches and the TLB of a busy service: a table of one slot per set, 16 times as large,
/// made the entry probe wait for memory on nearly every request (`scripts/bench.sh --compare`;
/// figures in the commit that sized it).
pub const GOROUTINE_SETS: u32 = 128;
pub const GOROUTINE_WAYS: u32 = 4;
pub const GOROUTINE_SLOTS: u32 = GOROUTINE_SETS * GOROUTINE_WAYS;

/// What a slot of a table by goroutine holds: a request or a call, finished once the probe at
/// its end has taken it.
pub trait SlotValue: Copy {
    /// Whether the end has taken it: the slot waits for its goroutine's next one.
    fn is_finished(&self) -> bool;
    /// Its fields that tell one from another, mixed into a word (see `GoroutineSlot::check`).
    fn check_word(&self) -> u64;
}

impl SlotValue for InFlightRequest {
    #[inline(always)]
    fn is_finished(&self) -> bool {
        self.request == 0
    }

    #[inline(always)]
    fn check_word(&self) -> u64 {
        self.start_monotonic_ns.rotate_left(31)
            ^ self.request.rotate_left(47)
            ^ self.writer_data
            ^ self.writer_itab.rotate_left(7)
    }
}

impl SlotValue for ClientCall {
    #[inline(always)]
    fn is_finished(&self) -> bool {
        self.request == 0
    }

    #[inline(always)]
    fn check_word(&self) -> u64 {
        self.start_monotonic_ns.rotate_left(31)
            ^ self.request.rotate_left(47)
            ^ self.transport.rotate_left(7)
            ^ u64::from_le_bytes(self.trace.span_id)
    }
}

/// One slot of a table by goroutine: the goroutine it belongs to, its request or call, and a
/// check word written after both, so a slot two CPUs claimed at once (their writes interleaved)
/// reads as nobody's rather than as a mix of two.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GoroutineSlot<V> {
    pub key: GoroutineKey,
    pub check: u64,
    pub value: V,
}

/// The in-flight table's slots: requests between the entry probe and the request's end.
pub type InFlightSlot = GoroutineSlot<InFlightRequest>;
/// The client table's slots: calls between their start and their return.
pub type ClientCallSlot = GoroutineSlot<ClientCall>;

impl<V: SlotValue> GoroutineSlot<V> {
    /// The first slot of `key`'s set.
    #[inline(always)]
    pub fn first_slot(key: &GoroutineKey) -> u32 {
        set_of(key.g, key.pid, GOROUTINE_SETS) * GOROUTINE_WAYS
    }

    /// The check word of `key` with `value`.
    #[inline(always)]
    pub fn check_of(key: &GoroutineKey, value: &V) -> u64 {
        key.g ^ (key.pid as u64).rotate_left(17) ^ value.check_word()
    }

    /// Whether the slot belongs to `key`'s goroutine (its value may be finished).
    #[inline(always)]
    pub fn is_for(&self, key: &GoroutineKey) -> bool {
        self.key.g == key.g && self.key.pid == key.pid
    }

    /// Whether the slot holds a request or call of `key` that its end has not taken yet,
    /// written whole.
    #[inline(always)]
    pub fn holds(&self, key: &GoroutineKey) -> bool {
        self.is_for(key)
            && !self.value.is_finished()
            && self.check == Self::check_of(key, &self.value)
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `repr(C)` data with no padding-dependent invariants; any bit pattern is valid.
    unsafe impl aya::Pod for super::GoOffsets {}
    unsafe impl aya::Pod for super::GoroutineKey {}
    unsafe impl aya::Pod for super::InFlightRequest {}
    unsafe impl aya::Pod for super::InFlightSlot {}
    unsafe impl aya::Pod for super::ClientCallSlot {}
    unsafe impl aya::Pod for super::BinaryConfig {}
    unsafe impl aya::Pod for super::ContextKey {}
    unsafe impl aya::Pod for super::ClientCall {}
    unsafe impl aya::Pod for super::TraceContext {}
    unsafe impl aya::Pod for super::HttpClientEvent {}
    unsafe impl aya::Pod for super::HttpServerEvent {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_are_pinned() {
        assert_eq!(
            size_of::<HttpServerEvent>(),
            48 + 40
                + 8 * 6
                + METHOD_CAP
                + TARGET_CAP
                + HOST_CAP
                + REMOTE_ADDR_CAP
                + USER_AGENT_CAP
                + ROUTE_CAP
        );
        assert_eq!(size_of::<HttpServerEvent>(), 1496);
        assert_eq!(core::mem::offset_of!(HttpServerEvent, binary), 44);
        assert_eq!(core::mem::offset_of!(HttpServerEvent, trace), 48);
        assert_eq!(size_of::<TraceContext>(), 40);
        assert_eq!(
            size_of::<HttpClientEvent>(),
            40 + 40 + 8 * 5 + METHOD_CAP + SCHEME_CAP + HOST_CAP + PATH_CAP + QUERY_CAP
        );
        assert_ne!(size_of::<HttpClientEvent>(), size_of::<HttpServerEvent>());
        assert_eq!(size_of::<GoOffsets>(), 71 * 8);
        assert_eq!(size_of::<ContextKey>(), 16);
        assert_eq!(size_of::<ClientCall>(), 80);
        assert_eq!(size_of::<GoroutineKey>(), 16);
        assert_eq!(size_of::<InFlightRequest>(), 104);
        // Two cache lines per slot.
        assert_eq!(size_of::<InFlightSlot>(), 128);
        assert_eq!(size_of::<ClientCallSlot>(), 104);
        assert_eq!(size_of::<BinaryConfig>(), 8 + 71 * 8);
    }

    #[test]
    fn a_cookie_carries_the_slot_and_the_address() {
        let cookie = probe_cookie(1023, 0x63f064);
        assert_eq!(cookie_parts(cookie), (1023, 0x63f064));
        assert_eq!(cookie_parts(probe_cookie(0, u32::MAX)), (0, 0xffff_ffff));
        let x_net = probe_cookie(1023, 0x63f064) | COOKIE_X_NET;
        assert_eq!(cookie_parts(x_net), (1023, 0x63f064));
        assert_eq!(cookie_transport(x_net), transport::X_NET);
        assert_eq!(cookie_transport(cookie), transport::NET_HTTP);
    }

    fn key(g: u64) -> GoroutineKey {
        GoroutineKey {
            pid: 42,
            _pad: 0,
            g,
        }
    }

    fn request(start: u64, request: u64) -> InFlightRequest {
        InFlightRequest {
            start_monotonic_ns: start,
            request,
            writer_itab: 0x7000,
            writer_data: 0xc000_1000,
            flags: 0,
            user_agent: 0,
            user_agent_len: 0,
            context: 0,
            trace: TraceContext::empty(),
        }
    }

    #[test]
    fn goroutines_spread_over_the_tables_by_goroutine() {
        // Goroutine structs are heap objects of one size class: 256 of them, a stride apart, fit
        // in the table's sets about as well as random keys would (~10 left over expected).
        for stride in [384u64, 416, 448, 512, 8192] {
            let mut in_set = [0u32; GOROUTINE_SETS as usize];
            let mut left_over = 0;
            for i in 0..256u64 {
                let first = InFlightSlot::first_slot(&key(0x00c0_0000_0000 + i * stride));
                assert_eq!(first % GOROUTINE_WAYS, 0);
                let set = &mut in_set[(first / GOROUTINE_WAYS) as usize];
                *set += 1;
                left_over += u32::from(*set > GOROUTINE_WAYS);
            }
            assert!(
                left_over <= 10,
                "stride {stride}: {left_over} left for the hash map"
            );
        }
    }

    #[test]
    fn a_slot_holds_only_the_request_written_whole_for_its_goroutine() {
        let (k, r) = (key(0x00c0_0012_3400), request(100, 0xc000_8000));
        let mut slot = InFlightSlot {
            key: k,
            check: InFlightSlot::check_of(&k, &r),
            value: r,
        };
        assert!(slot.holds(&k));
        assert!(!slot.holds(&key(0x00c0_0056_7800)), "another goroutine");
        // Two claims interleaved: this key with another request's start time.
        slot.value.start_monotonic_ns = 200;
        assert!(!slot.holds(&k));
        slot.value = r;
        slot.value.request = 0;
        slot.check = InFlightSlot::check_of(&k, &slot.value);
        assert!(!slot.holds(&k), "taken by the request-end probe");
    }

    #[test]
    fn a_window_ends_with_the_last_field_it_covers() {
        // Through the 8 bytes at 0x78; a byte field at 9 needs the second word.
        assert_eq!(words_through(&[0x68, 0x78, 0]), 16);
        assert_eq!(words_through(&[0, 9]), 2);
        assert_eq!(words_through(&[ABSENT, 0x10, ABSENT]), 3);
        assert_eq!(words_through(&[ABSENT]), 0);
        // Fields past the buffer are left out (read one by one).
        assert_eq!(words_through(&[0x10, 0x400]), WINDOW_WORDS);
    }

    #[test]
    fn bounded_str_reports_truncation() {
        let mut s = BoundedStr::<4> {
            len: 6,
            bytes: *b"abcd",
        };
        assert!(s.is_truncated());
        assert_eq!(s.copied(), b"abcd");
        s.len = 2;
        assert!(!s.is_truncated());
        assert_eq!(s.copied(), b"ab");
    }
}
