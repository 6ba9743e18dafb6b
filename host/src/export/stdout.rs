//! Stdout mode (no OTLP endpoint configured): one readable line per span.
//!
//! `2026-11-25T10:00:00.123Z GET /users/{id} 200 1.234ms service=foo pid=123 kind=server
//! trace=<32 hex> span=<16 hex> [parent=<16 hex>] [status=ok|status=error [error="..."]] k=v ...`
//!
//! The HTTP status column shows `-` when the span has no `http.response.status_code`.

use std::fmt::Write as _;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::span::{AttributeValue, Span, SpanKind, SpanStatus};

use super::queue::Counters;

/// Formats one span as a single line (no trailing newline).
pub fn format_span_line(span: &Span) -> String {
    let mut line = String::with_capacity(256);
    line.push_str(&format_timestamp(span.start_unix_nanos));
    line.push(' ');
    push_name(&mut line, &span.name);
    match span.attribute("http.response.status_code") {
        Some(status) => {
            line.push(' ');
            push_value(&mut line, status);
        }
        None => line.push_str(" -"),
    }
    let duration = span.end_unix_nanos.saturating_sub(span.start_unix_nanos);
    let _ = write!(
        line,
        " {}.{:03}ms",
        duration / 1_000_000,
        (duration / 1_000) % 1_000
    );
    line.push_str(" service=");
    push_str_value(&mut line, span.resource.service_name());
    if let Some(pid) = span.resource.get("process.pid") {
        line.push_str(" pid=");
        push_value(&mut line, pid);
    }
    line.push_str(match span.kind {
        SpanKind::Server => " kind=server",
        SpanKind::Client => " kind=client",
    });
    line.push_str(" trace=");
    push_hex(&mut line, &span.trace_id);
    line.push_str(" span=");
    push_hex(&mut line, &span.span_id);
    if let Some(parent) = &span.parent_span_id {
        line.push_str(" parent=");
        push_hex(&mut line, parent);
    }
    match &span.status {
        SpanStatus::Unset => {}
        SpanStatus::Ok => line.push_str(" status=ok"),
        SpanStatus::Error { description } => {
            line.push_str(" status=error");
            if !description.is_empty() {
                line.push_str(" error=");
                push_str_value(&mut line, description);
            }
        }
    }
    for attribute in &span.attributes {
        line.push(' ');
        push_str_value(&mut line, &attribute.key);
        line.push('=');
        push_value(&mut line, &attribute.value);
    }
    line
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T10:00:00.123Z`.
pub fn format_timestamp(unix_nanos: u64) -> String {
    let secs = unix_nanos / 1_000_000_000;
    let millis = (unix_nanos / 1_000_000) % 1_000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm);
/// avoids a date crate for one function.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn push_hex(line: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(line, "{b:02x}");
    }
}

fn push_value(line: &mut String, value: &AttributeValue) {
    match value {
        AttributeValue::Str(s) => push_str_value(line, s),
        AttributeValue::Int(i) => {
            let _ = write!(line, "{i}");
        }
        AttributeValue::Float(x) => {
            let _ = write!(line, "{x}");
        }
        AttributeValue::Bool(b) => {
            let _ = write!(line, "{b}");
        }
    }
}

/// The span name as it is, spaces included (`GET /users/{id}`), but with control characters
/// escaped: a name comes from the request (a route template made from a path with an encoded
/// line break, say) and must not start a forged line.
fn push_name(line: &mut String, name: &str) {
    for c in name.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
}

/// Writes `s` bare when that keeps the line splittable on spaces and `=`, quoted (Rust string
/// escapes) otherwise, so a value can never forge another field or a line break.
fn push_str_value(line: &mut String, s: &str) {
    let needs_quotes = s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=' || c == '\\');
    if needs_quotes {
        let _ = write!(line, "{s:?}");
    } else {
        line.push_str(s);
    }
}

/// Writes formatted lines to an async writer (standard output in the agent).
pub(crate) struct LineSink {
    writer: Box<dyn AsyncWrite + Send + Unpin>,
}

impl LineSink {
    pub(crate) fn new(writer: Box<dyn AsyncWrite + Send + Unpin>) -> LineSink {
        LineSink { writer }
    }

    pub(crate) async fn deliver(&mut self, spans: Vec<Span>, counters: &Counters) {
        let mut text = String::with_capacity(spans.len() * 256);
        for span in &spans {
            text.push_str(&format_span_line(span));
            text.push('\n');
        }
        let result = match self.writer.write_all(text.as_bytes()).await {
            Ok(()) => self.writer.flush().await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => counters.exported(spans.len()),
            // A closed stdout will not come back; retrying would only delay the next batch.
            Err(e) => counters.gave_up(spans.len(), &format!("writing span lines failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::span::{Attribute, Resource};

    // 2026-11-25T10:00:00Z (from `date -u -d 2026-11-25T10:00:00Z +%s`).
    const NOV_25_2026: u64 = 1_795_600_800 * 1_000_000_000;

    fn span() -> Span {
        Span {
            trace_id: [0xab; 16],
            span_id: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
            parent_span_id: None,
            name: "GET /users/{id}".into(),
            kind: SpanKind::Server,
            start_unix_nanos: NOV_25_2026 + 123_456_789,
            end_unix_nanos: NOV_25_2026 + 123_456_789 + 1_234_567,
            status: SpanStatus::Unset,
            attributes: vec![
                Attribute::new("http.request.method", "GET"),
                Attribute::new("url.path", "/users/7"),
                Attribute::new("http.response.status_code", 200),
            ],
            resource: Arc::new(Resource {
                attributes: vec![
                    Attribute::new("service.name", "foo"),
                    Attribute::new("process.pid", 123),
                ],
            }),
        }
    }

    #[test]
    fn server_span_line() {
        assert_eq!(
            format_span_line(&span()),
            "2026-11-25T10:00:00.123Z GET /users/{id} 200 1.234ms service=foo pid=123 kind=server \
             trace=abababababababababababababababab span=0123456789abcdef \
             http.request.method=GET url.path=/users/7 http.response.status_code=200"
        );
    }

    #[test]
    fn values_with_spaces_quotes_or_equals_are_quoted_and_cannot_break_the_line() {
        let mut s = span();
        s.attributes = vec![
            Attribute::new("user_agent.original", "curl/8.0 (x86_64)"),
            Attribute::new("q", "a=b"),
            Attribute::new("evil", "x\ny=\"z\""),
            Attribute::new("empty", ""),
            Attribute::new("ratio", AttributeValue::Float(0.25)),
            Attribute::new("ok", false),
        ];
        s.name = "GET /a\n2026-01-01T00:00:00.000Z GET /admin".into();
        let line = format_span_line(&s);
        assert!(!line.contains('\n'));
        assert!(
            line.contains(r" GET /a\n2026-01-01T00:00:00.000Z GET /admin - "),
            "the name's line break is escaped: {line}"
        );
        assert!(
            line.ends_with(
                r#" user_agent.original="curl/8.0 (x86_64)" q="a=b" evil="x\ny=\"z\"" empty="" ratio=0.25 ok=false"#
            ),
            "{line}"
        );
        // No status attribute: a dash keeps the columns aligned.
        assert!(line.contains(" - 1.234ms "), "{line}");
    }

    #[test]
    fn client_span_with_parent_error_and_unknown_service() {
        let mut s = span();
        s.kind = SpanKind::Client;
        s.parent_span_id = Some([0xff; 8]);
        s.status = SpanStatus::Error {
            description: "connection reset".into(),
        };
        s.resource = Arc::new(Resource::default());
        s.attributes.clear();
        s.end_unix_nanos = s.start_unix_nanos + 2_500_000_000;
        assert_eq!(
            format_span_line(&s),
            "2026-11-25T10:00:00.123Z GET /users/{id} - 2500.000ms service=unknown_service kind=client \
             trace=abababababababababababababababab span=0123456789abcdef parent=ffffffffffffffff \
             status=error error=\"connection reset\""
        );
    }

    #[test]
    fn an_error_without_a_message_prints_no_error_field() {
        let mut s = span();
        s.status = SpanStatus::Error {
            description: String::new(),
        };
        let line = format_span_line(&s);
        assert!(line.contains(" status=error "), "{line}");
        assert!(!line.contains("error=\"\""), "{line}");
        assert!(!line.contains(" error="), "{line}");
    }

    #[test]
    fn end_before_start_shows_zero_duration() {
        let mut s = span();
        s.end_unix_nanos = s.start_unix_nanos - 1;
        s.status = SpanStatus::Ok;
        let line = format_span_line(&s);
        assert!(line.contains(" 200 0.000ms "), "{line}");
        assert!(line.contains(" status=ok "), "{line}");
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T23:59:59Z: a leap day, from `date -u -d 2024-02-29T23:59:59Z +%s`.
        assert_eq!(
            format_timestamp(1_709_251_199_999_999_999),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(
            format_timestamp(1_709_251_200_000_000_000),
            "2024-03-01T00:00:00.000Z"
        );
        assert_eq!(
            format_timestamp(NOV_25_2026 + 5_000_000),
            "2026-11-25T10:00:00.005Z"
        );
    }
}
