//! A served request to a SERVER span and a client call to a CLIENT span, per the OTel HTTP
//! semantic conventions, in the trace the probes gave them.
use std::borrow::Cow;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use http_autoinstrument_common::{parent, TraceContext};

use super::redact::{escape_path, QueryRedaction};
use super::{
    push_attribute, Attribute, AttributeValue, Resource, Span, SpanKind, SpanStatus, WallClock,
};
use crate::decode::{ClientRequest, ServerRequest, Text};

/// Appended to a value the probe had to cut, so nobody mistakes it for the whole value.
pub const TRUNCATION_MARK: &str = "…";
/// Lists the attributes whose values were cut (comma separated).
pub const TRUNCATED_ATTRIBUTE: &str = "http_autoinstrument.truncated";

const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The route template of a Go ServeMux pattern (`[METHOD ][HOST]/PATH`): `GET /users/{id}` and
/// `example.com/users/{id}` both give `/users/{id}`.
pub fn route_of_pattern(pattern: &str) -> Option<&str> {
    let pattern = pattern.trim();
    // Byte loops here and in `split_host_port`: `split_once`, `find` and `contains` search
    // through `memchr`, whose setup costs more than these few bytes take.
    let without_method = match pattern.bytes().position(|b| b == b' ') {
        Some(space) => pattern[space + 1..].trim_start(),
        None => pattern,
    };
    let slash = without_method.bytes().position(|b| b == b'/')?;
    Some(&without_method[slash..])
}

/// Splits `host[:port]` / `[v6]:port`.
fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((host, tail)) = rest.split_once(']') {
            return (host, tail.strip_prefix(':').and_then(port));
        }
    }
    // The port is a few digits after the last colon; a colon before it makes an IPv6 address
    // without brackets, which has no port.
    let Some(colon) = s.bytes().rposition(|b| b == b':') else {
        return (s, None);
    };
    let host = &s[..colon];
    match port(&s[colon + 1..]) {
        Some(port) if !host.bytes().any(|b| b == b':') => (host, Some(port)),
        _ => (s, None),
    }
}

/// Decimal digits of a TCP port (no sign, unlike `str::parse`).
fn port(digits: &str) -> Option<u16> {
    if digits.is_empty() {
        return None;
    }
    let mut value = 0u32;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
        if value > u32::from(u16::MAX) {
            return None;
        }
    }
    u16::try_from(value).ok()
}

/// `network.protocol.version` of the HTTP versions there are, as constants.
fn known_protocol_version(major: u8, minor: u8) -> Option<&'static str> {
    match (major, minor) {
        (1, 1) => Some("1.1"),
        (1, 0) => Some("1.0"),
        (2, 0) => Some("2"),
        (3, 0) => Some("3"),
        _ => None,
    }
}

thread_local! {
    /// Ids need to be unpredictable enough not to collide, not secret: a per-thread SmallRng
    /// seeded from the OS, as the OpenTelemetry SDK's own id generator does (ThreadRng's
    /// ChaCha costs a visible share of span building).
    static ID_RNG: std::cell::RefCell<SmallRng> = std::cell::RefCell::new(SmallRng::from_os_rng());
}

pub fn random_ids() -> ([u8; 16], [u8; 8]) {
    ID_RNG.with_borrow_mut(|rng| {
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        // All-zero ids are invalid in W3C trace context: redraw (practically never happens).
        while trace_id == [0; 16] {
            rng.fill(&mut trace_id);
        }
        while span_id == [0; 8] {
            rng.fill(&mut span_id);
        }
        (trace_id, span_id)
    })
}

/// Collects attributes, marking truncated text values.
struct Attributes {
    list: Vec<Attribute>,
    truncated: Vec<&'static str>,
}

impl Attributes {
    fn text(&mut self, key: &'static str, text: &Text<'_>) {
        if text.is_empty() {
            return;
        }
        let mut value = text.value.clone().into_owned();
        if text.truncated {
            value.push_str(TRUNCATION_MARK);
            self.truncated.push(key);
        }
        self.add(key, value);
    }

    #[inline(always)]
    fn add(&mut self, key: &'static str, value: impl Into<AttributeValue>) {
        push_attribute(&mut self.list, || Attribute::new(key, value));
    }
}

/// The ids of a span from its trace context; new random ones for an event without one (made
/// by hand, in tests and benchmarks).
fn ids(trace: &TraceContext) -> ([u8; 16], [u8; 8], Option<[u8; 8]>) {
    if trace.trace_id == [0; 16] || trace.span_id == [0; 8] {
        let (trace_id, span_id) = random_ids();
        return (trace_id, span_id, None);
    }
    let parent_span_id = (trace.parent != parent::NONE).then_some(trace.parent_span_id);
    (trace.trace_id, trace.span_id, parent_span_id)
}

/// `http.request.method`, `_OTHER` with `http.request.method_original` for a method the
/// conventions do not name; returns the known method.
fn add_method(attrs: &mut Attributes, method: &Text<'_>) -> Option<&'static str> {
    let known = KNOWN_METHODS
        .iter()
        .copied()
        .find(|known| *known == method.value.as_ref());
    match known {
        Some(known) => attrs.add("http.request.method", known),
        None => {
            attrs.add("http.request.method", "_OTHER");
            attrs.text("http.request.method_original", method);
        }
    }
    known
}

/// `network.protocol.version`. Two calls rather than one with a `Cow`: a `Cow` made before
/// `add` is copied over with the stall `push_attribute` avoids.
#[inline]
fn add_protocol_version(attrs: &mut Attributes, major: u8, minor: u8) {
    match known_protocol_version(major, minor) {
        Some(version) => attrs.add("network.protocol.version", version),
        None => attrs.add("network.protocol.version", format!("{major}.{minor}")),
    }
}

/// The text of a query, redacted, marked when cut.
fn query_text(
    attrs: &mut Attributes,
    key: &'static str,
    query: &Text<'_>,
    redaction: &QueryRedaction,
) {
    if query.is_empty() {
        return;
    }
    let redacted = redaction.apply(&query.value);
    let text = Text {
        value: Cow::Borrowed(redacted.as_ref()),
        truncated: query.truncated,
    };
    attrs.text(key, &text);
}

pub fn server_span(
    request: &ServerRequest<'_>,
    resource: Arc<Resource>,
    clock: &WallClock,
    redaction: &QueryRedaction,
) -> Span {
    let mut attrs = Attributes {
        list: Vec::with_capacity(16),
        truncated: Vec::new(),
    };
    let known_method = add_method(&mut attrs, &request.method);
    attrs.text("url.path", &request.path);
    query_text(&mut attrs, "url.query", &request.query, redaction);
    attrs.add("url.scheme", if request.tls { "https" } else { "http" });
    // A cut pattern is no route: left out (and marked), rather than naming spans after a
    // template that does not exist. The route-template plugin can still make one from the path.
    let route = if request.pattern.truncated {
        attrs.truncated.push("http.route");
        None
    } else {
        route_of_pattern(&request.pattern.value).map(str::to_owned)
    };
    if let Some(route) = &route {
        attrs.add("http.route", route.clone());
    }
    if let Some(status) = request.status {
        attrs.add("http.response.status_code", i64::from(status));
    }
    add_protocol_version(&mut attrs, request.proto_major, request.proto_minor);
    let (host, host_port) = split_host_port(&request.host.value);
    if !host.is_empty() {
        attrs.add("server.address", host.to_owned());
    }
    if let Some(port) = host_port.or(request.server_port) {
        attrs.add("server.port", i64::from(port));
    }
    let (client, client_port) = split_host_port(&request.remote_addr.value);
    if !client.is_empty() {
        attrs.add("client.address", client.to_owned());
    }
    if let Some(port) = client_port {
        attrs.add("client.port", i64::from(port));
    }
    attrs.text("user_agent.original", &request.user_agent);
    if let Some(n) = request.request_content_length {
        attrs.add("http.request.body.size", n as i64);
    }
    if let Some(n) = request.response_body_bytes {
        attrs.add("http.response.body.size", n as i64);
    }
    if !attrs.truncated.is_empty() {
        attrs.add(TRUNCATED_ATTRIBUTE, attrs.truncated.join(","));
    }

    let status = if request.panicked {
        attrs.add("error.type", "panic");
        SpanStatus::Error {
            description: "handler panicked".into(),
        }
    } else {
        match request.status {
            Some(code @ 500..=599) => {
                attrs.add("error.type", code.to_string());
                SpanStatus::Error {
                    description: String::new(),
                }
            }
            _ => SpanStatus::Unset,
        }
    };
    let method_for_name = known_method.unwrap_or("HTTP");
    let name = match &route {
        Some(route) => Cow::Owned(format!("{method_for_name} {route}")),
        None => Cow::Borrowed(method_for_name),
    };
    let (trace_id, span_id, parent_span_id) = ids(&request.trace);
    Span {
        trace_id,
        span_id,
        parent_span_id,
        name,
        kind: SpanKind::Server,
        start_unix_nanos: clock.to_unix_nanos(request.start_monotonic_ns),
        end_unix_nanos: clock.to_unix_nanos(request.end_monotonic_ns),
        status,
        attributes: attrs.list,
        resource,
    }
}

/// A client call's span. `error_type`: the name of the type of the error the call returned
/// (`*net.OpError`), when it failed.
pub fn client_span(
    request: &ClientRequest<'_>,
    resource: Arc<Resource>,
    clock: &WallClock,
    redaction: &QueryRedaction,
    error_type: Option<&str>,
) -> Span {
    let mut attrs = Attributes {
        list: Vec::with_capacity(8),
        truncated: Vec::new(),
    };
    // Go sends GET for an empty method.
    let known_method = if request.method.is_empty() {
        attrs.add("http.request.method", "GET");
        Some("GET")
    } else {
        add_method(&mut attrs, &request.method)
    };
    let scheme = request.scheme.value.as_ref();
    let (host, host_port) = split_host_port(&request.host.value);
    let default_port = match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    // The URL as it was asked for, never with user information (the probe does not read it),
    // with the sensitive query parameters redacted.
    let mut full = format!(
        "{scheme}://{}{}",
        request.host.value,
        escape_path(&request.path.value)
    );
    let query = redaction.apply(&request.query.value);
    if !query.is_empty() {
        full.push('?');
        full.push_str(&query);
    }
    if request.host.truncated || request.path.truncated || request.query.truncated {
        full.push_str(TRUNCATION_MARK);
        attrs.truncated.push("url.full");
    }
    attrs.add("url.full", full);
    if !host.is_empty() {
        attrs.add("server.address", host.to_owned());
    }
    if let Some(port) = host_port.or(default_port) {
        attrs.add("server.port", i64::from(port));
    }
    if let Some(status) = request.status {
        attrs.add("http.response.status_code", i64::from(status));
        add_protocol_version(&mut attrs, request.proto_major, request.proto_minor);
    }
    if !attrs.truncated.is_empty() {
        attrs.add(TRUNCATED_ATTRIBUTE, attrs.truncated.join(","));
    }
    // A client's call failed when no response came, or one with a 4xx or 5xx status.
    let status = match (request.error_itab, request.status) {
        (Some(_), _) => {
            attrs.add("error.type", error_type.unwrap_or("_OTHER").to_owned());
            SpanStatus::Error {
                description: String::new(),
            }
        }
        (None, Some(code @ 400..=599)) => {
            attrs.add("error.type", code.to_string());
            SpanStatus::Error {
                description: String::new(),
            }
        }
        _ => SpanStatus::Unset,
    };
    let (trace_id, span_id, parent_span_id) = ids(&request.trace);
    Span {
        trace_id,
        span_id,
        parent_span_id,
        name: Cow::Borrowed(known_method.unwrap_or("HTTP")),
        kind: SpanKind::Client,
        start_unix_nanos: clock.to_unix_nanos(request.start_monotonic_ns),
        end_unix_nanos: clock.to_unix_nanos(request.end_monotonic_ns),
        status,
        attributes: attrs.list,
        resource,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tests::{event, set};
    use http_autoinstrument_common::{flags, ROUTE_CAP};

    fn span_of(e: &http_autoinstrument_common::HttpServerEvent) -> Span {
        let request = ServerRequest::from_event(e);
        server_span(
            &request,
            Arc::new(Resource::default()),
            &WallClock::measure(),
            &QueryRedaction::default(),
        )
    }

    #[test]
    fn route_of_pattern_strips_method_and_host() {
        assert_eq!(route_of_pattern("GET /users/{id}"), Some("/users/{id}"));
        assert_eq!(route_of_pattern("/health"), Some("/health"));
        assert_eq!(route_of_pattern("example.com/a/"), Some("/a/"));
        assert_eq!(route_of_pattern("POST example.com/x"), Some("/x"));
        assert_eq!(route_of_pattern(""), None);
    }

    #[test]
    fn host_port_splitting() {
        assert_eq!(split_host_port("127.0.0.1:8080"), ("127.0.0.1", Some(8080)));
        assert_eq!(split_host_port("[::1]:443"), ("::1", Some(443)));
        assert_eq!(split_host_port("example.com"), ("example.com", None));
        assert_eq!(split_host_port("::1"), ("::1", None));
        assert_eq!(split_host_port("fe80::1:8080"), ("fe80::1:8080", None));
        assert_eq!(split_host_port("shop:"), ("shop:", None));
        assert_eq!(split_host_port("shop:70000"), ("shop:70000", None));
        assert_eq!(split_host_port(":80"), ("", Some(80)));
        assert_eq!(split_host_port("[::1]"), ("::1", None));
        assert_eq!(split_host_port("shop:+80"), ("shop:+80", None));
        assert_eq!(split_host_port("shop:65535"), ("shop", Some(65535)));
        assert_eq!(split_host_port("shop:065535"), ("shop", Some(65535)));
        assert_eq!(
            split_host_port("shop:99999999999"),
            ("shop:99999999999", None)
        );
        assert_eq!(split_host_port("[::1]:x"), ("::1", None));
    }

    #[test]
    fn builds_semconv_attributes() {
        let mut e = event();
        set(&mut e.method, b"GET");
        set(&mut e.target, b"/users/7?a=1");
        set(&mut e.host, b"localhost:8443");
        set(&mut e.remote_addr, b"127.0.0.1:50000");
        set(&mut e.user_agent, b"curl/8.0");
        set(&mut e.route, b"GET /users/{id}");
        e.status = 201;
        e.proto_major = 2;
        e.flags = flags::TLS | flags::HTTP2;
        e.request_content_length = 0;
        e.response_body_bytes = 5;
        e.server_port = 9999;
        let s = span_of(&e);
        assert_eq!(s.name, "GET /users/{id}");
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(s.status, SpanStatus::Unset);
        let a = |k: &str| s.attribute(k).cloned();
        assert_eq!(a("http.request.method"), Some("GET".into()));
        assert_eq!(a("url.path"), Some("/users/7".into()));
        assert_eq!(a("url.query"), Some("a=1".into()));
        assert_eq!(a("url.scheme"), Some("https".into()));
        assert_eq!(a("http.route"), Some("/users/{id}".into()));
        assert_eq!(a("http.response.status_code"), Some(201i64.into()));
        assert_eq!(a("network.protocol.version"), Some("2".into()));
        assert_eq!(a("server.address"), Some("localhost".into()));
        assert_eq!(
            a("server.port"),
            Some(8443i64.into()),
            "Host header port wins"
        );
        assert_eq!(a("client.address"), Some("127.0.0.1".into()));
        assert_eq!(a("client.port"), Some(50000i64.into()));
        assert_eq!(a("user_agent.original"), Some("curl/8.0".into()));
        assert_eq!(a("http.response.body.size"), Some(5i64.into()));
        assert_eq!(a(TRUNCATED_ATTRIBUTE), None);
    }

    #[test]
    fn server_errors_and_panics_are_errors_but_client_errors_are_not() {
        let mut e = event();
        set(&mut e.method, b"POST");
        e.status = 503;
        let s = span_of(&e);
        assert!(matches!(s.status, SpanStatus::Error { .. }));
        assert_eq!(s.attribute("error.type"), Some(&"503".into()));
        assert_eq!(s.name, "POST");
        e.status = 404;
        assert_eq!(span_of(&e).status, SpanStatus::Unset);
        e.flags = flags::PANICKED;
        let s = span_of(&e);
        assert!(matches!(s.status, SpanStatus::Error { .. }));
        assert_eq!(s.attribute("http.response.status_code"), None);
    }

    #[test]
    fn truncated_values_are_marked() {
        let mut e = event();
        set(&mut e.method, b"GET");
        let long = vec![b'x'; 4096];
        set(&mut e.target, &long);
        let s = span_of(&e);
        let Some(AttributeValue::Str(path)) = s.attribute("url.path") else {
            panic!("no url.path");
        };
        assert!(path.ends_with(TRUNCATION_MARK));
        assert_eq!(s.attribute(TRUNCATED_ATTRIBUTE), Some(&"url.path".into()));
    }

    #[test]
    fn a_cut_route_pattern_is_no_route() {
        let mut e = event();
        set(&mut e.method, b"GET");
        set(&mut e.target, b"/a");
        let long = format!("GET /{}", "x".repeat(ROUTE_CAP));
        set(&mut e.route, long.as_bytes());
        let s = span_of(&e);
        assert_eq!(s.attribute("http.route"), None);
        assert_eq!(s.name, "GET");
        assert_eq!(s.attribute(TRUNCATED_ATTRIBUTE), Some(&"http.route".into()));
    }

    #[test]
    fn unknown_methods_use_other() {
        let mut e = event();
        set(&mut e.method, b"PROPFIND");
        let s = span_of(&e);
        assert_eq!(s.name, "HTTP");
        assert_eq!(s.attribute("http.request.method"), Some(&"_OTHER".into()));
        assert_eq!(
            s.attribute("http.request.method_original"),
            Some(&"PROPFIND".into())
        );
    }

    #[test]
    fn ids_are_random_and_valid() {
        let (t1, s1) = random_ids();
        let (t2, s2) = random_ids();
        assert_ne!(t1, t2);
        assert_ne!(s1, s2);
        assert_ne!(t1, [0; 16]);
    }
}
