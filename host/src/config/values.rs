//! Checks of single values, shared by the file, environment and flag layers so each one gives
//! the same message whatever the source. Each message says what was expected.
use std::collections::{BTreeMap, HashMap};

use serde::Serializer;

use crate::export::{ConfigError as ExportConfigError, ExportConfig};

pub fn check_glob(glob: &str) -> Result<(), String> {
    glob::Pattern::new(glob).map(drop).map_err(|e| {
        format!("{glob:?} is not a valid glob ({e}): expected a path pattern such as \"/srv/*\"")
    })
}

/// The export module's own endpoint rules (scheme, host, no TLS in this build).
pub fn check_endpoint(url: &str) -> Result<(), String> {
    let vars = HashMap::from([(crate::export::ENDPOINT.to_owned(), url.to_owned())]);
    match ExportConfig::from_env_map(&vars) {
        Ok(_) => Ok(()),
        Err(ExportConfigError::Endpoint { reason, .. }) => Err(format!(
            "{url:?} is not a usable OTLP endpoint: {reason}; expected a URL such as \
             http://otel-collector:4318 (http/protobuf) or http://otel-collector:4317 (grpc)"
        )),
        Err(other) => Err(other.to_string()),
    }
}

pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!(
            "header name {name:?} is not a valid HTTP header name: expected letters, digits and '-'"
        ));
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "the value of header {name:?} is not a valid HTTP header value: expected visible ASCII text"
        ));
    }
    Ok(())
}

pub fn check_log_level(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    // A bare word is a valid directive to `tracing` (a module name, every level), but here it
    // is far more likely a misspelt level: refuse it.
    let misspelt = filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.contains('=') && !d.contains('['))
        .find(|d| !LEVELS.contains(&d.to_ascii_lowercase().as_str()));
    let parsed = match misspelt {
        Some(word) => Err(format!("{word:?} is not a level")),
        None => tracing_subscriber::EnvFilter::builder()
            .parse(filter)
            .map(drop)
            .map_err(|e| e.to_string()),
    };
    parsed.map_err(|e| {
        format!(
            "{filter:?} is not a log filter ({e}): expected trace, debug, info, warn or error, \
             optionally with per-module directives such as \"info,http_autoinstrument=debug\""
        )
    })
}

/// Header values are usually credentials: the effective configuration shows only the names.
pub fn serialize_redacted<S: Serializer>(
    headers: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(headers.keys().map(|k| (k, "<redacted>")))
}

/// Encodes `value` for an `OTEL_EXPORTER_OTLP_HEADERS` entry (values are percent-decoded there).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A sampling ratio: from 0 to 1.
pub fn check_ratio(value: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{value} is not a ratio: expected a number from 0 to 1, e.g. 0.25"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_round_trips_through_the_header_parser() {
        let value = "Bearer a=b,c%d é";
        let parsed =
            crate::export::parse_headers("X", &format!("k={}", percent_encode(value))).unwrap();
        assert_eq!(parsed, vec![("k".to_owned(), value.to_owned())]);
    }

    #[test]
    fn each_check_names_the_expected_form() {
        assert!(check_glob("/srv/[")
            .unwrap_err()
            .contains("expected a path pattern"));
        assert!(check_endpoint("collector:4318")
            .unwrap_err()
            .contains("no scheme"));
        assert!(check_header("bad name", "v")
            .unwrap_err()
            .contains("header name"));
        assert!(check_log_level("info,=[")
            .unwrap_err()
            .contains("expected trace, debug"));
        assert!(check_log_level("info,http_autoinstrument=debug").is_ok());
    }
}
