//! Sending batches through opentelemetry-otlp's `SpanExporter` (gRPC via tonic, or
//! http/protobuf via reqwest), one export call per resource, with bounded retries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};

use crate::span::{Resource, Span};

use super::config::{Compression, OtlpConfig, Protocol};
use super::convert;
use super::queue::Counters;
use super::retry::{backoff, classify, Retry};
use super::worker::ShutdownSignal;
use super::ExportLimits;

/// Builds the opentelemetry-otlp exporter. Needs a Tokio runtime (tonic connects lazily from it).
///
/// Endpoint, protocol, headers and timeout are all set explicitly so our parsed configuration,
/// not the crate's own environment lookup, decides them.
pub(crate) fn build_exporter(
    config: &OtlpConfig,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let result = match config.protocol {
        Protocol::Grpc => {
            let mut metadata = tonic::metadata::MetadataMap::new();
            for (key, value) in &config.headers {
                let key = tonic::metadata::MetadataKey::from_bytes(key.as_bytes())
                    .map_err(|e| format!("header {key:?} cannot be sent as gRPC metadata: {e}"))?;
                let value =
                    tonic::metadata::MetadataValue::try_from(value.as_str()).map_err(|e| {
                        format!("header {key:?} has a value gRPC metadata cannot carry: {e}")
                    })?;
                metadata.insert(key, value);
            }
            let builder = builder
                .with_tonic()
                .with_endpoint(config.endpoint.clone())
                .with_protocol(opentelemetry_otlp::Protocol::Grpc)
                .with_timeout(config.timeout)
                .with_metadata(metadata);
            match config.compression {
                Compression::Gzip => builder
                    .with_compression(opentelemetry_otlp::Compression::Gzip)
                    .build(),
                Compression::None => builder.build(),
            }
        }
        Protocol::HttpProtobuf => {
            let builder = builder
                .with_http()
                .with_endpoint(config.endpoint.clone())
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_timeout(config.timeout)
                .with_headers(config.headers.iter().cloned().collect::<HashMap<_, _>>());
            match config.compression {
                Compression::Gzip => builder
                    .with_compression(opentelemetry_otlp::Compression::Gzip)
                    .build(),
                Compression::None => builder.build(),
            }
        }
    };
    result.map_err(|e| e.to_string())
}

/// What the exporter hands opentelemetry-otlp for `spans`: per distinct resource, that resource
/// and its spans as SDK data. The same conversion export uses; public so the pipeline benchmarks
/// measure it without a collector.
pub fn sdk_batches(spans: Vec<Span>) -> Vec<(opentelemetry_sdk::Resource, Vec<SpanData>)> {
    let scope = convert::scope();
    group_by_resource(spans)
        .into_iter()
        .map(|(resource, spans)| (convert::resource(&resource), sdk_spans(&spans, &scope)))
        .collect()
}

/// What one export attempt hands the exporter, which consumes it.
fn sdk_spans(spans: &[Span], scope: &InstrumentationScope) -> Vec<SpanData> {
    spans
        .iter()
        .map(|span| convert::span_data(span, scope))
        .collect()
}

pub(crate) struct OtlpSink {
    exporter: opentelemetry_otlp::SpanExporter,
    scope: InstrumentationScope,
    /// The resource last given to `set_resource`, to skip redundant conversions.
    current_resource: Option<Arc<Resource>>,
    timeout: Duration,
    limits: ExportLimits,
}

impl OtlpSink {
    pub(crate) fn new(
        exporter: opentelemetry_otlp::SpanExporter,
        timeout: Duration,
        limits: ExportLimits,
    ) -> OtlpSink {
        OtlpSink {
            exporter,
            scope: convert::scope(),
            current_resource: None,
            timeout,
            limits,
        }
    }

    /// Exports `spans`, one OTLP request (and so one ResourceSpans) per distinct resource.
    pub(crate) async fn deliver(
        &mut self,
        spans: Vec<Span>,
        counters: &Counters,
        shutdown: &mut ShutdownSignal,
    ) {
        for (resource, spans) in group_by_resource(spans) {
            let same = self
                .current_resource
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, &resource) || **current == *resource);
            if !same {
                // The exporter holds one resource at a time; it applies to the next export call.
                self.exporter.set_resource(&convert::resource(&resource));
                self.current_resource = Some(resource);
            }
            self.export_with_retry(&spans, counters, shutdown).await;
        }
    }

    async fn export_with_retry(
        &mut self,
        spans: &[Span],
        counters: &Counters,
        shutdown: &mut ShutdownSignal,
    ) {
        let n = spans.len();
        let started = Instant::now();
        let budget_end = started + self.limits.max_retry_time;
        let mut attempts = 0u32;
        loop {
            // On shutdown the flush deadline also bounds each attempt.
            let deadline = shutdown
                .deadline()
                .map_or(budget_end, |d| d.min(budget_end));
            let attempt_timeout = self
                .timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            if attempt_timeout.is_zero() {
                counters.gave_up(
                    n,
                    &format!(
                        "{} after {attempts} attempts over {:.1?}",
                        deadline_reason(shutdown),
                        started.elapsed()
                    ),
                );
                return;
            }
            attempts += 1;
            // Converted anew for each attempt: cheaper than converting once and handing the
            // exporter a copy each time (a copy of SDK span data clones every attribute).
            let data = sdk_spans(spans, &self.scope);
            let error =
                match tokio::time::timeout(attempt_timeout, self.exporter.export(data)).await {
                    Ok(Ok(())) => {
                        counters.exported(n);
                        return;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no answer within {attempt_timeout:?}"),
                };
            if classify(&error) == Retry::Permanent {
                counters.gave_up(
                    n,
                    &format!("the collector rejected the batch (not retryable): {error}"),
                );
                return;
            }
            if attempts >= self.limits.max_export_attempts {
                counters.gave_up(
                    n,
                    &format!(
                        "{attempts} attempts failed over {:.1?}, last error: {error}",
                        started.elapsed()
                    ),
                );
                return;
            }
            let delay = backoff(
                attempts,
                self.limits.initial_backoff,
                self.limits.max_backoff,
            );
            let deadline = shutdown
                .deadline()
                .map_or(budget_end, |d| d.min(budget_end));
            if Instant::now() + delay >= deadline {
                counters.gave_up(
                    n,
                    &format!(
                        "{} after {attempts} attempts over {:.1?}, last error: {error}",
                        deadline_reason(shutdown),
                        started.elapsed()
                    ),
                );
                return;
            }
            tracing::debug!(spans = n, attempt = attempts, ?delay, %error, "OTLP export failed, retrying");
            counters.retried();
            // A shutdown request cuts the wait short: the flush deadline then governs.
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.requested() => {}
            }
        }
    }
}

fn deadline_reason(shutdown: &ShutdownSignal) -> &'static str {
    if shutdown.deadline().is_some() {
        "shutdown deadline reached"
    } else {
        "retry time budget exhausted"
    }
}

/// Groups spans by resource, keeping first-seen order. Equal resources behind different `Arc`s
/// are merged so a collector sees one ResourceSpans per process, not one per allocation.
fn group_by_resource(spans: Vec<Span>) -> Vec<(Arc<Resource>, Vec<Span>)> {
    let mut groups: Vec<(Arc<Resource>, Vec<Span>)> = Vec::new();
    for span in spans {
        match groups
            .iter_mut()
            .find(|(r, _)| Arc::ptr_eq(r, &span.resource) || **r == *span.resource)
        {
            Some((_, group)) => group.push(span),
            None => groups.push((span.resource.clone(), vec![span])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Attribute;

    fn span(resource: &Arc<Resource>, id: u8) -> Span {
        Span::for_tests(resource.clone(), [id; 8])
    }

    #[test]
    fn groups_by_resource_in_first_seen_order_merging_equal_ones() {
        let a = Arc::new(Resource {
            attributes: vec![Attribute::new("service.name", "a")],
        });
        let a_again = Arc::new((*a).clone());
        let b = Arc::new(Resource {
            attributes: vec![Attribute::new("service.name", "b")],
        });
        let spans = vec![span(&b, 1), span(&a, 2), span(&b, 3), span(&a_again, 4)];
        let groups = group_by_resource(spans);
        let summary: Vec<(String, Vec<u8>)> = groups
            .iter()
            .map(|(r, d)| {
                (
                    r.service_name().to_owned(),
                    d.iter().map(|s| s.span_id[0]).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![("b".to_owned(), vec![1, 3]), ("a".to_owned(), vec![2, 4])]
        );
    }
}
