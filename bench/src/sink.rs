//! A local OTLP http/protobuf receiver that decodes every request, counts its spans and answers
//! 200: the collector end of the agent's export path, without a collector's own cost.
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::Result;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use crate::http::read_message;

pub struct OtlpSink {
    pub endpoint: String,
    spans: Arc<AtomicU64>,
    in_bench_trace: Arc<AtomicU64>,
}

/// The trace the benchmark's requests with an incoming `traceparent` belong to
/// (`trace_cost::TRACEPARENT`): spans that joined it are counted apart.
pub const BENCH_TRACE_ID: [u8; 16] = [
    0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c,
];

impl OtlpSink {
    pub fn start() -> Result<OtlpSink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let spans = Arc::new(AtomicU64::new(0));
        let in_bench_trace = Arc::new(AtomicU64::new(0));
        let counter = spans.clone();
        let joined = in_bench_trace.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counter = counter.clone();
                let joined = joined.clone();
                std::thread::spawn(move || {
                    let Ok(mut writer) = stream.try_clone() else {
                        return;
                    };
                    let mut reader = BufReader::new(stream);
                    while let Ok(Some(request)) = read_message(&mut reader) {
                        if let Ok(decoded) = ExportTraceServiceRequest::decode(&request.body[..]) {
                            let spans = || {
                                decoded
                                    .resource_spans
                                    .iter()
                                    .flat_map(|r| &r.scope_spans)
                                    .flat_map(|s| &s.spans)
                            };
                            counter.fetch_add(spans().count() as u64, Relaxed);
                            let in_trace = spans().filter(|s| s.trace_id == BENCH_TRACE_ID).count();
                            joined.fetch_add(in_trace as u64, Relaxed);
                        }
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
                        if writer.write_all(reply).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(OtlpSink {
            endpoint,
            spans,
            in_bench_trace,
        })
    }

    /// Spans received so far that belong to [`BENCH_TRACE_ID`].
    pub fn spans_in_bench_trace(&self) -> u64 {
        self.in_bench_trace.load(Relaxed)
    }

    /// Spans received so far.
    pub fn spans(&self) -> u64 {
        self.spans.load(Relaxed)
    }
}
