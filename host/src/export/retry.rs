//! When to retry a failed export and how long to wait before the next attempt.

use std::time::Duration;

use rand::Rng;

/// Whether an export error is worth another attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    Retryable,
    Permanent,
}

/// Classifies the error text of an opentelemetry-otlp export.
///
/// The exporter only hands back a string (`OTelSdkError::InternalFailure`), so this reads the
/// HTTP status or gRPC code out of it. The OTLP spec makes HTTP 429/502/503/504 and the gRPC
/// codes CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS retryable;
/// any other status is permanent (resending the same payload cannot succeed). Errors carrying no
/// status at all (connection refused, timeouts) are transport failures and are retried.
pub(crate) fn classify(error: &str) -> Retry {
    // opentelemetry-otlp's HTTP exporter: "... Status Code: 503, Response: ...".
    if let Some(rest) = error.split("Status Code: ").nth(1) {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(code) = digits.parse::<u16>() {
            return match code {
                429 | 502 | 503 | 504 => Retry::Retryable,
                _ => Retry::Permanent,
            };
        }
    }
    // tonic's `Status` display: "code: '<description of the code>', message: ...".
    use tonic::Code;
    // UNKNOWN is left retryable: tonic uses it for transport failures it cannot map.
    // RESOURCE_EXHAUSTED is retryable only with a RetryInfo detail, which the string does not carry.
    const PERMANENT: [Code; 9] = [
        Code::InvalidArgument,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::FailedPrecondition,
        Code::Unimplemented,
        Code::Internal,
        Code::Unauthenticated,
        Code::ResourceExhausted,
    ];
    if PERMANENT
        .iter()
        .any(|code| error.contains(&format!("code: '{}'", code.description())))
    {
        return Retry::Permanent;
    }
    Retry::Retryable
}

/// Delay before retry number `retry` (1-based): exponential from `initial`, capped at `max`,
/// with "equal jitter" (half fixed, half random) so agents that lost the same collector at the
/// same moment do not come back in lockstep.
pub(crate) fn backoff(retry: u32, initial: Duration, max: Duration) -> Duration {
    let exponent = retry.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1 << exponent).min(max);
    let half = base / 2;
    let jitter_nanos = rand::rng().random_range(0..=half.as_nanos() as u64);
    half + Duration::from_nanos(jitter_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_follow_the_otlp_spec() {
        let http = |code: u16| {
            classify(&format!(
                "OpenTelemetry trace export failed. Url: http://x/v1/traces, Status Code: {code}, Response: \"\""
            ))
        };
        for code in [429, 502, 503, 504] {
            assert_eq!(http(code), Retry::Retryable, "{code}");
        }
        for code in [400, 401, 403, 404, 413, 500, 501] {
            assert_eq!(http(code), Retry::Permanent, "{code}");
        }
    }

    #[test]
    fn grpc_codes_follow_the_otlp_spec() {
        use tonic::{Code, Status};
        let grpc = |code: Code| classify(&Status::new(code, "boom").to_string());
        for code in [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unavailable,
            Code::DataLoss,
        ] {
            assert_eq!(grpc(code), Retry::Retryable, "{code:?}");
        }
        for code in [
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::Unimplemented,
            Code::Internal,
        ] {
            assert_eq!(grpc(code), Retry::Permanent, "{code:?}");
        }
    }

    #[test]
    fn transport_errors_are_retried() {
        assert_eq!(
            classify(
                "reqwest::Error { kind: Request, source: ConnectError(\"tcp connect error\") }"
            ),
            Retry::Retryable
        );
        assert_eq!(classify("export timed out after 10s"), Retry::Retryable);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered_within_bounds() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for (retry, base_ms) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (5, 1600),
            (6, 2000),
            (40, 2000),
        ] {
            let base = Duration::from_millis(base_ms);
            for _ in 0..50 {
                let d = backoff(retry, initial, max);
                assert!(
                    d >= base / 2 && d <= base,
                    "retry {retry}: {d:?} outside [{:?}, {base:?}]",
                    base / 2
                );
            }
        }
        // Jitter actually varies the delay.
        let samples: std::collections::HashSet<_> =
            (0..20).map(|_| backoff(3, initial, max)).collect();
        assert!(samples.len() > 1);
    }
}
