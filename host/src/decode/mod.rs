//! Ring-buffer records to requests: checks the size, reads the fixed-size event in place and
//! exposes its strings as text. Nothing here trusts the record: a short record is an error,
//! lengths are bounded by the layout, and bytes that are not UTF-8 are replaced, not rejected.
mod client;
mod target;

use std::borrow::Cow;

use http_autoinstrument_common::{
    flags, BoundedStr, HttpClientEvent, HttpServerEvent, TraceContext,
};

pub use client::ClientRequest;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("event of {got} bytes, expected {expected}: the agent and its eBPF probes disagree on the layout (rebuild both)")]
    WrongSize { got: usize, expected: usize },
    #[error("event of {got} bytes, neither a server ({server}) nor a client ({client}) event: the agent and its eBPF probes disagree on the layout (rebuild both)")]
    UnknownSize {
        got: usize,
        server: usize,
        client: usize,
    },
}

/// The event of a record: in place, or a copy of bytes that are not aligned for it.
///
/// Not a `Cow`: its owned case would hold the whole event, so every `Cow` (and the `Result`
/// around it) would be as large as a whole event, copied wherever it is moved, whichever case it
/// holds.
pub enum Event<'a, T = HttpServerEvent> {
    InPlace(&'a T),
    Copied(Box<T>),
}

impl<T> std::ops::Deref for Event<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self {
            Event::InPlace(event) => event,
            Event::Copied(event) => event,
        }
    }
}

/// A ring-buffer record: a served request or a client call, told apart by size.
pub enum Record<'a> {
    Server(Event<'a, HttpServerEvent>),
    Client(Event<'a, HttpClientEvent>),
}

/// Decodes a record of either kind.
pub fn decode_record(record: &[u8]) -> Result<Record<'_>, DecodeError> {
    let (server, client) = (
        std::mem::size_of::<HttpServerEvent>(),
        std::mem::size_of::<HttpClientEvent>(),
    );
    match record.len() {
        n if n == server => decode_event(record).map(Record::Server),
        n if n == client => Ok(Record::Client(in_place(record))),
        got => Err(DecodeError::UnknownSize {
            got,
            server,
            client,
        }),
    }
}

/// `record` (of `T`'s size) as a `T`, in place when aligned.
fn in_place<T: Copy>(record: &[u8]) -> Event<'_, T> {
    debug_assert_eq!(record.len(), std::mem::size_of::<T>());
    let ptr = record.as_ptr().cast::<T>();
    if ptr.is_aligned() {
        // SAFETY: aligned, the length was checked, and the event types are plain repr(C) data
        // valid for any bytes.
        return Event::InPlace(unsafe { &*ptr });
    }
    // Ring-buffer records are 8-byte aligned, as the events are: this is for bytes from elsewhere.
    // SAFETY: as above, read unaligned.
    Event::Copied(Box::new(unsafe { std::ptr::read_unaligned(ptr) }))
}

/// The event of a ring-buffer record, read in place: a request uses a few hundred bytes of a
/// record, and copying it whole was a measurable share of span building.
pub fn decode_event(record: &[u8]) -> Result<Event<'_>, DecodeError> {
    let expected = std::mem::size_of::<HttpServerEvent>();
    if record.len() != expected {
        return Err(DecodeError::WrongSize {
            got: record.len(),
            expected,
        });
    }
    Ok(in_place(record))
}

/// A text field of a request, with whether the probe had to cut it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a> {
    pub value: Cow<'a, str>,
    pub truncated: bool,
}

impl<'a> Text<'a> {
    fn of<const N: usize>(s: &'a BoundedStr<N>) -> Self {
        let truncated = s.is_truncated();
        let bytes = if truncated {
            target::without_cut_character(s.copied())
        } else {
            s.copied()
        };
        Text {
            value: target::text(bytes),
            truncated,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

/// One served request, borrowing its text from the event.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerRequest<'a> {
    pub pid: u32,
    pub start_monotonic_ns: u64,
    pub end_monotonic_ns: u64,
    pub method: Text<'a>,
    pub path: Text<'a>,
    pub query: Text<'a>,
    pub host: Text<'a>,
    pub remote_addr: Text<'a>,
    pub user_agent: Text<'a>,
    /// `Request.Pattern` as Go wrote it (`[METHOD ][HOST]/PATH`); empty when unknown.
    pub pattern: Text<'a>,
    /// HTTP status; `None` when the probe could not read it.
    pub status: Option<u16>,
    pub request_content_length: Option<u64>,
    pub response_body_bytes: Option<u64>,
    pub server_port: Option<u16>,
    pub proto_major: u8,
    pub proto_minor: u8,
    pub tls: bool,
    pub http2: bool,
    pub panicked: bool,
    /// The span's trace context, as the probes decided it.
    pub trace: TraceContext,
}

impl<'a> ServerRequest<'a> {
    pub fn from_event(event: &'a HttpServerEvent) -> Self {
        let unknown_writer = event.flags & flags::UNKNOWN_WRITER != 0;
        let panicked = event.flags & flags::PANICKED != 0;
        let status = match event.status {
            // The client of a handler that panicked gets a broken connection (HTTP/1) or a reset
            // stream (HTTP/2), whatever status the handler had set.
            _ if panicked => None,
            // Go sends 200 for a handler that wrote nothing, after ServeHTTP returns.
            0 if !unknown_writer => Some(200),
            100..=999 if !unknown_writer => Some(event.status),
            _ => None,
        };
        let (method, target, target_truncated) = method_and_target(event);
        let method = Text {
            value: target::text(method.0),
            truncated: method.1,
        };
        let (path, query, cut) = target::split(target, target_truncated, &method.value);
        ServerRequest {
            pid: event.pid,
            start_monotonic_ns: event.start_monotonic_ns,
            end_monotonic_ns: event.end_monotonic_ns.max(event.start_monotonic_ns),
            method,
            path: Text {
                value: path,
                truncated: cut == target::Part::Path,
            },
            query: Text {
                value: query,
                truncated: cut == target::Part::Query,
            },
            host: Text::of(&event.host),
            remote_addr: Text::of(&event.remote_addr),
            user_agent: Text::of(&event.user_agent),
            pattern: Text::of(&event.route),
            status,
            request_content_length: u64::try_from(event.request_content_length).ok(),
            response_body_bytes: u64::try_from(event.response_body_bytes).ok(),
            server_port: (event.server_port != 0).then_some(event.server_port),
            proto_major: event.proto_major,
            proto_minor: event.proto_minor,
            tls: event.flags & flags::TLS != 0,
            http2: event.flags & flags::HTTP2 != 0,
            panicked,
            trace: event.trace,
        }
    }
}

/// The method (bytes, cut short) and the target (bytes, cut short) of an event, from the request
/// line when the probe copied that (`flags::REQUEST_LINE`).
fn method_and_target(event: &HttpServerEvent) -> ((&[u8], bool), &[u8], bool) {
    if event.flags & flags::REQUEST_LINE == 0 {
        return (
            (event.method.copied(), event.method.is_truncated()),
            event.target.copied(),
            event.target.is_truncated(),
        );
    }
    let line = event.target.copied();
    let method_len = usize::try_from(event.method.len).unwrap_or(usize::MAX);
    if method_len >= line.len() {
        // A bad length, or a line cut within the method: all of it is the method.
        return (
            (line, method_len > line.len()),
            &[],
            event.target.is_truncated(),
        );
    }
    (
        (&line[..method_len], false),
        &line[method_len + 1..],
        event.target.is_truncated(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An all-zero event with the given strings set, as the probes would write it.
    pub(crate) fn event() -> HttpServerEvent {
        // SAFETY: all-zero bytes are a valid HttpServerEvent.
        unsafe { std::mem::zeroed() }
    }

    pub(crate) fn set<const N: usize>(field: &mut BoundedStr<N>, value: &[u8]) {
        field.len = value.len() as u64;
        let n = value.len().min(N);
        field.bytes[..n].copy_from_slice(&value[..n]);
    }

    fn as_bytes(e: &HttpServerEvent) -> &[u8] {
        // SAFETY: reading the bytes of a plain repr(C) value.
        unsafe {
            std::slice::from_raw_parts(
                (e as *const HttpServerEvent).cast::<u8>(),
                std::mem::size_of::<HttpServerEvent>(),
            )
        }
    }

    #[test]
    fn round_trips_a_record() {
        let mut e = event();
        e.pid = 42;
        e.status = 404;
        e.flags = flags::TLS | flags::HTTP2;
        e.request_content_length = -1;
        e.response_body_bytes = 12;
        e.proto_major = 2;
        set(&mut e.method, b"GET");
        set(&mut e.target, b"/users/7?page=2");
        let decoded = decode_event(as_bytes(&e)).unwrap();
        let r = ServerRequest::from_event(&decoded);
        assert_eq!(r.pid, 42);
        assert_eq!(r.status, Some(404));
        assert_eq!(r.method.value, "GET");
        assert_eq!(r.path.value, "/users/7");
        assert_eq!(r.query.value, "page=2");
        assert!(r.tls && r.http2 && !r.panicked);
        assert_eq!(r.request_content_length, None);
        assert_eq!(r.response_body_bytes, Some(12));
    }

    #[test]
    fn a_request_line_gives_method_path_and_query() {
        let mut e = event();
        e.flags = flags::REQUEST_LINE;
        set(&mut e.target, b"DELETE /carts/9/items/%C3%A9?force=1");
        e.method.len = 6;
        let r = ServerRequest::from_event(&e);
        assert_eq!(r.method.value, "DELETE");
        assert_eq!(r.path.value, "/carts/9/items/é");
        assert_eq!(r.query.value, "force=1");
        assert!(!r.method.truncated && !r.path.truncated && !r.query.truncated);

        // Cut within the query; then a method length beyond the line (a torn read).
        let mut long = b"GET /search?q=".to_vec();
        long.extend(std::iter::repeat_n(b'x', 2000));
        set(&mut e.target, &long);
        e.method.len = 3;
        let r = ServerRequest::from_event(&e);
        assert_eq!(
            (r.method.value.as_ref(), r.path.value.as_ref()),
            ("GET", "/search")
        );
        assert!(r.query.truncated && !r.path.truncated);
        e.method.len = u64::MAX;
        let r = ServerRequest::from_event(&e);
        assert!(r.method.truncated && r.path.value.is_empty());
    }

    #[test]
    fn reads_an_aligned_record_in_place_and_copies_a_misaligned_one() {
        let mut e = event();
        e.pid = 42;
        set(&mut e.target, b"/users/7");
        let aligned = decode_event(as_bytes(&e)).unwrap();
        assert!(
            matches!(aligned, Event::InPlace(_)),
            "no copy of a ring record"
        );
        // The same bytes one byte into a buffer: not aligned for the event's u64 fields.
        let mut shifted = vec![0u8; 1];
        shifted.extend_from_slice(as_bytes(&e));
        let misaligned = decode_event(&shifted[1..]).unwrap();
        assert!(matches!(misaligned, Event::Copied(_)));
        for decoded in [aligned, misaligned] {
            let r = ServerRequest::from_event(&decoded);
            assert_eq!((r.pid, r.path.value.as_ref()), (42, "/users/7"));
        }
    }

    #[test]
    fn rejects_records_of_the_wrong_size() {
        let e = event();
        let bytes = as_bytes(&e);
        assert_eq!(
            decode_event(&bytes[..100]).err(),
            Some(DecodeError::WrongSize {
                got: 100,
                expected: bytes.len()
            })
        );
        assert!(decode_event(&[]).is_err());
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(decode_event(&longer).is_err());
    }

    #[test]
    fn malformed_strings_are_bounded_and_replaced() {
        let mut e = event();
        // A length far beyond the buffer (a torn read in the kernel) must not overrun.
        e.target.len = u64::MAX;
        e.target.bytes.fill(b'a');
        set(&mut e.method, &[0xff, 0xfe, b'G']);
        let r = ServerRequest::from_event(&e);
        assert!(r.path.truncated);
        assert_eq!(r.path.value.len(), e.target.bytes.len());
        assert_eq!(r.method.value, "\u{fffd}\u{fffd}G");
    }

    #[test]
    fn status_zero_means_go_sent_200_unless_unknown() {
        let mut e = event();
        assert_eq!(ServerRequest::from_event(&e).status, Some(200));
        e.flags = flags::UNKNOWN_WRITER;
        assert_eq!(ServerRequest::from_event(&e).status, None);
        e.flags = flags::PANICKED;
        assert_eq!(ServerRequest::from_event(&e).status, None);
        e.flags = 0;
        e.status = 42; // not an HTTP status: a bad read
        assert_eq!(ServerRequest::from_event(&e).status, None);
    }

    #[test]
    fn end_before_start_is_clamped() {
        let mut e = event();
        e.start_monotonic_ns = 10;
        e.end_monotonic_ns = 5;
        assert_eq!(ServerRequest::from_event(&e).end_monotonic_ns, 10);
    }
}
