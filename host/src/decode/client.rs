//! A client call's event to a request: its URL's parts as Go's `url.URL` holds them (the path
//! decoded, the query raw; never the user information, which the probe does not read), the
//! response's status and protocol, or the failure's error type.
use http_autoinstrument_common::{client_flags, HttpClientEvent, TraceContext};

use super::Text;

#[derive(Debug, Clone, PartialEq)]
pub struct ClientRequest<'a> {
    pub pid: u32,
    /// The executable's slot: the binary that names the error's type.
    pub binary: u32,
    pub start_monotonic_ns: u64,
    pub end_monotonic_ns: u64,
    pub method: Text<'a>,
    pub scheme: Text<'a>,
    /// `URL.Host`: host and port as the request names them.
    pub host: Text<'a>,
    pub path: Text<'a>,
    pub query: Text<'a>,
    /// The response's status; `None` when the call failed.
    pub status: Option<u16>,
    pub proto_major: u8,
    pub proto_minor: u8,
    /// The link-time address of the returned error's itab, when the call failed.
    pub error_itab: Option<u64>,
    pub trace: TraceContext,
}

impl<'a> ClientRequest<'a> {
    pub fn from_event(event: &'a HttpClientEvent) -> Self {
        let failed = event.flags & client_flags::ERROR != 0;
        ClientRequest {
            pid: event.pid,
            binary: event.binary.into(),
            start_monotonic_ns: event.start_monotonic_ns,
            end_monotonic_ns: event.end_monotonic_ns.max(event.start_monotonic_ns),
            method: Text::of(&event.method),
            scheme: Text::of(&event.scheme),
            host: Text::of(&event.host),
            path: Text::of(&event.path),
            query: Text::of(&event.query),
            status: (!failed && (100..=999).contains(&event.status)).then_some(event.status),
            proto_major: event.proto_major,
            proto_minor: event.proto_minor,
            error_itab: failed.then_some(event.error_itab),
            trace: event.trace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tests::set;

    fn event() -> HttpClientEvent {
        // SAFETY: all-zero bytes are a valid HttpClientEvent.
        unsafe { std::mem::zeroed() }
    }

    #[test]
    fn a_call_is_a_response_or_an_error() {
        let mut e = event();
        set(&mut e.method, b"GET");
        set(&mut e.scheme, b"https");
        set(&mut e.host, b"api.example:8443");
        set(&mut e.path, b"/v1/items");
        set(&mut e.query, b"page=2");
        e.status = 201;
        e.proto_major = 2;
        let r = ClientRequest::from_event(&e);
        assert_eq!(
            (r.method.value.as_ref(), r.host.value.as_ref()),
            ("GET", "api.example:8443")
        );
        assert_eq!((r.status, r.error_itab), (Some(201), None));
        e.flags = client_flags::ERROR;
        e.error_itab = 0x7a_0000;
        let r = ClientRequest::from_event(&e);
        assert_eq!((r.status, r.error_itab), (None, Some(0x7a_0000)));
    }
}
