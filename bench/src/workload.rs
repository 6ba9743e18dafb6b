//! The requests every pipeline benchmark replays: fixed-size events as the probes write them
//! into the ring buffer, with the text of a typical JSON API's traffic.
//!
//! Each event carries method, a 25-byte path with an id (so route templating has work), host,
//! client address, a browser User-Agent and status/sizes; one in eight has a query string with a
//! token (so redaction has work). No `Request.Pattern`: as for a service on Go <= 1.22 or a
//! non-ServeMux router, which is the case where the route-template plugin does the most.
use std::sync::Arc;

use http_autoinstrument::decode::{decode_event, ServerRequest};
use http_autoinstrument::span::{
    server_span, Attribute, QueryRedaction, Resource, Span, WallClock,
};
use http_autoinstrument_common::{flags, BoundedStr, HttpServerEvent};

/// Process id on every replayed event.
pub const PID: u32 = 4242;

fn set<const N: usize>(field: &mut BoundedStr<N>, value: &str) {
    field.len = value.len() as u64;
    let n = value.len().min(N);
    field.bytes[..n].copy_from_slice(&value.as_bytes()[..n]);
}

/// Request `i` of the workload.
pub fn event(i: usize) -> HttpServerEvent {
    // SAFETY: all-zero bytes are a valid HttpServerEvent (plain integers and byte arrays).
    let mut e: HttpServerEvent = unsafe { std::mem::zeroed() };
    e.start_monotonic_ns = 1_000_000_000 + i as u64 * 10_000;
    e.end_monotonic_ns = e.start_monotonic_ns + 850_000;
    e.request_content_length = 0;
    e.response_body_bytes = 312;
    e.pid = PID;
    e.status = 200;
    e.server_port = 8080;
    e.proto_major = 1;
    e.proto_minor = 1;
    // As the probe copies an HTTP/1 request: method and target from the request line.
    let query = if i.is_multiple_of(8) {
        "?page=2&token=abc123"
    } else {
        ""
    };
    set(
        &mut e.target,
        &format!("GET /api/v1/users/{}/orders{query}", 1000 + i),
    );
    e.method.len = 3;
    e.flags = flags::REQUEST_LINE;
    set(&mut e.host, "shop.internal:8080");
    set(&mut e.remote_addr, "10.1.2.3:52100");
    set(
        &mut e.user_agent,
        "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0",
    );
    e
}

/// `n` events as the raw ring-buffer records the agent reads, back to back.
pub fn records(n: usize) -> Vec<u8> {
    let size = std::mem::size_of::<HttpServerEvent>();
    let mut out = Vec::with_capacity(n * size);
    for i in 0..n {
        let e = event(i);
        // SAFETY: viewing a plain repr(C) value as its bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts((&e as *const HttpServerEvent).cast::<u8>(), size)
        };
        out.extend_from_slice(bytes);
    }
    out
}

/// The resource of the replayed process, as the agent builds it for a service in a container.
pub fn resource() -> Arc<Resource> {
    Arc::new(Resource {
        attributes: vec![
            Attribute::new("service.name", "shop"),
            Attribute::new("process.pid", i64::from(PID)),
            Attribute::new("host.name", "node-1"),
            Attribute::new("telemetry.sdk.name", "http-autoinstrument"),
        ],
    })
}

/// Decode + span building: what the agent does with each ring-buffer record before plugins.
pub struct SpanBuilder {
    clock: WallClock,
    resource: Arc<Resource>,
    redaction: QueryRedaction,
}

impl Default for SpanBuilder {
    fn default() -> Self {
        SpanBuilder {
            clock: WallClock::measure(),
            resource: resource(),
            redaction: QueryRedaction::default(),
        }
    }
}

impl SpanBuilder {
    /// Spans of a run of back-to-back records (a whole number of events).
    pub fn spans(&self, records: &[u8]) -> Vec<Span> {
        records
            .chunks_exact(std::mem::size_of::<HttpServerEvent>())
            .map(|record| {
                let event = decode_event(record).expect("workload records have the event size");
                server_span(
                    &ServerRequest::from_event(&event),
                    self.resource.clone(),
                    &self.clock,
                    &self.redaction,
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_autoinstrument::span::AttributeValue;

    #[test]
    fn records_decode_to_the_workload_spans() {
        let spans = SpanBuilder::default().spans(&records(16));
        assert_eq!(spans.len(), 16);
        let path = |s: &Span| match s.attribute("url.path") {
            Some(AttributeValue::Str(p)) => p.to_string(),
            other => panic!("url.path is {other:?}"),
        };
        assert_eq!(path(&spans[3]), "/api/v1/users/1003/orders");
        assert!(spans[0].attribute("url.query").is_some());
        assert!(spans[1].attribute("url.query").is_none());
        assert!(spans.iter().all(|s| s.attribute("http.route").is_none()));
    }

    #[test]
    fn records_are_read_in_place_as_the_agent_reads_the_ring_buffer() {
        let records = records(4);
        for record in records.chunks_exact(std::mem::size_of::<HttpServerEvent>()) {
            let event = decode_event(record).unwrap();
            assert!(matches!(
                event,
                http_autoinstrument::decode::Event::InPlace(_)
            ));
        }
    }
}
