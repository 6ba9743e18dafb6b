//! Where spans go, read from the standard OTLP exporter variables.
//!
//! Parsing takes a map rather than reading the process environment so tests are hermetic;
//! [`ExportConfig::from_process_env`] is the thin wrapper the agent uses.
//! Spec: <https://opentelemetry.io/docs/specs/otel/protocol/exporter/>.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

pub const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// Accepted as an alias of [`TRACES_ENDPOINT`] (some deployments set this shorter name).
pub const TRACES_ENDPOINT_ALIAS: &str = "OTEL_TRACES_ENDPOINT";
pub const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
pub const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
pub const TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
pub const TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
pub const TRACES_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
pub const COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";

/// The spec's default export timeout (10 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    const ACCEPTED: &'static str = "\"grpc\" or \"http/protobuf\"";

    fn parse(var: &'static str, value: &str) -> Result<Protocol, ConfigError> {
        match value.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            _ => Err(ConfigError::Protocol {
                var,
                value: value.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        })
    }
}

/// How export requests are compressed (`OTEL_EXPORTER_OTLP_COMPRESSION`: the spec's `gzip`
/// or `none`, the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

impl Compression {
    const ACCEPTED: &'static str = "\"gzip\" or \"none\"";

    fn parse(var: &'static str, value: &str) -> Result<Compression, ConfigError> {
        match value.trim() {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            _ => Err(ConfigError::Compression {
                var,
                value: value.to_owned(),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
        }
    }
}

/// Everything the OTLP exporter needs, already validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpConfig {
    /// Full URL: for http/protobuf it includes the `/v1/traces` path.
    pub endpoint: String,
    /// The variable the endpoint came from, for the startup log and error messages.
    pub endpoint_var: &'static str,
    pub protocol: Protocol,
    /// Lower-cased names (gRPC metadata requires it, HTTP does not care), decoded values.
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub compression: Compression,
}

/// Where spans go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportConfig {
    /// No endpoint configured: one human-readable line per span on standard output.
    Stdout,
    Otlp(OtlpConfig),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "{var}={value:?} is not a supported OTLP protocol: accepted values are {accepted}; \
         set {var} to one of them, or unset it for the default http/protobuf",
        accepted = Protocol::ACCEPTED
    )]
    Protocol { var: &'static str, value: String },
    #[error(
        "{var}={value:?} is not a usable OTLP endpoint: {reason}; \
         set it to a URL such as http://localhost:4318 (http/protobuf) or http://localhost:4317 (grpc)"
    )]
    Endpoint {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "{var} entry {entry:?} is invalid: {reason}; \
         expected comma-separated key=value pairs with URL-encoded values, e.g. api-key=secret,tenant=a%20b"
    )]
    Header {
        var: &'static str,
        entry: String,
        reason: String,
    },
    #[error(
        "{var}={value:?} is not a valid timeout: expected a positive whole number of milliseconds, e.g. 10000"
    )]
    Timeout { var: &'static str, value: String },
    #[error(
        "{var}={value:?} is not a supported OTLP compression: accepted values are {accepted}; \
         set {var} to one of them, or unset it for none",
        accepted = Compression::ACCEPTED
    )]
    Compression { var: &'static str, value: String },
}

impl ExportConfig {
    /// Reads the `OTEL_*` variables of this process.
    pub fn from_process_env() -> Result<ExportConfig, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("OTEL_"))
            .collect();
        ExportConfig::from_env_map(&vars)
    }

    /// Resolves the configuration from `vars` (variable name -> value).
    ///
    /// Precedence follows the spec: the traces-specific variable wins over the generic one, and
    /// an empty value counts as unset.
    pub fn from_env_map(vars: &HashMap<String, String>) -> Result<ExportConfig, ConfigError> {
        let get = |name: &'static str| {
            vars.get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(|v| (name, v))
        };

        let protocol = match get(TRACES_PROTOCOL).or_else(|| get(PROTOCOL)) {
            Some((var, value)) => Protocol::parse(var, value)?,
            None => Protocol::HttpProtobuf,
        };

        let (endpoint_var, endpoint) =
            match get(TRACES_ENDPOINT).or_else(|| get(TRACES_ENDPOINT_ALIAS)) {
                // A signal-specific endpoint is used exactly as given.
                Some((var, value)) => {
                    validate_endpoint(var, value)?;
                    (var, value.to_owned())
                }
                None => match get(ENDPOINT) {
                    // The generic endpoint is a base URL: http/protobuf appends the signal path, gRPC
                    // has no path (the service name is the path).
                    Some((var, value)) => {
                        validate_endpoint(var, value)?;
                        match protocol {
                            Protocol::HttpProtobuf => {
                                (var, format!("{}/v1/traces", value.trim_end_matches('/')))
                            }
                            Protocol::Grpc => (var, value.to_owned()),
                        }
                    }
                    None => return Ok(ExportConfig::Stdout),
                },
            };

        let headers = match get(TRACES_HEADERS).or_else(|| get(HEADERS)) {
            Some((var, value)) => parse_headers(var, value)?,
            None => Vec::new(),
        };

        let timeout = match get(TRACES_TIMEOUT).or_else(|| get(TIMEOUT)) {
            Some((var, value)) => match value.parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(ConfigError::Timeout {
                        var,
                        value: value.to_owned(),
                    })
                }
            },
            None => DEFAULT_TIMEOUT,
        };

        let compression = match get(TRACES_COMPRESSION).or_else(|| get(COMPRESSION)) {
            Some((var, value)) => Compression::parse(var, value)?,
            None => Compression::None,
        };

        Ok(ExportConfig::Otlp(OtlpConfig {
            endpoint,
            endpoint_var,
            protocol,
            headers,
            timeout,
            compression,
        }))
    }
}

fn validate_endpoint(var: &'static str, value: &str) -> Result<(), ConfigError> {
    let error = |reason: &str| ConfigError::Endpoint {
        var,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    // Checked first: without a scheme `http::Uri` only says "invalid format".
    if !value.contains("://") {
        return Err(error("the URL has no scheme (add http://)"));
    }
    let uri: http::Uri = value
        .parse()
        .map_err(|e: http::uri::InvalidUri| error(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        // Neither transport is built with TLS (it would add rustls/ring to the agent); failing
        // here beats failing on every export later.
        Some("https") => return Err(error(
            "https is not supported by this build (no TLS); send to a local collector over http://",
        )),
        Some(other) => return Err(error(&format!("scheme {other:?} is not http"))),
        None => return Err(error("the URL has no scheme (add http://)")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(error("the URL has no host"));
    }
    Ok(())
}

/// Parses `k=v,k2=v2` (W3C baggage style: values are percent-encoded).
pub(crate) fn parse_headers(
    var: &'static str,
    value: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let error = |reason: &str| ConfigError::Header {
            var,
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let (key, val) = entry.split_once('=').ok_or_else(|| error("missing '='"))?;
        let key = percent_decode(key.trim())
            .ok_or_else(|| error("bad percent-encoding in the name"))?
            .to_ascii_lowercase();
        let val =
            percent_decode(val.trim()).ok_or_else(|| error("bad percent-encoding in the value"))?;
        if key.is_empty() {
            return Err(error("empty header name"));
        }
        http::HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| error("not a valid HTTP header name"))?;
        http::HeaderValue::from_str(&val)
            .map_err(|_| error("the decoded value is not a valid HTTP header value"))?;
        // A later duplicate replaces the earlier one, as a map would.
        headers.retain(|(k, _)| *k != key);
        headers.push((key, val));
    }
    Ok(headers)
}

/// Decodes `%XX` escapes; `None` on a truncated or non-hex escape or invalid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_url_decoded_trimmed_and_lowercased() {
        let h = parse_headers(HEADERS, " Api-Key = se%20cret%3D1 ,tenant=a,, x=%C3%A9").unwrap();
        assert_eq!(
            h,
            vec![
                ("api-key".to_owned(), "se cret=1".to_owned()),
                ("tenant".to_owned(), "a".to_owned()),
                ("x".to_owned(), "é".to_owned()),
            ]
        );
    }

    #[test]
    fn later_duplicate_header_wins() {
        let h = parse_headers(HEADERS, "a=1,A=2").unwrap();
        assert_eq!(h, vec![("a".to_owned(), "2".to_owned())]);
    }

    #[test]
    fn malformed_headers_name_the_variable_and_entry() {
        for (input, reason) in [
            ("novalue", "missing '='"),
            ("a=%zz", "bad percent-encoding"),
            ("a=%4", "bad percent-encoding"),
            ("=v", "empty header name"),
            ("bad name=v", "not a valid HTTP header name"),
            ("a=line%0Abreak", "not a valid HTTP header value"),
        ] {
            let err = parse_headers(TRACES_HEADERS, input)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(TRACES_HEADERS), "{err}");
            assert!(err.contains(reason), "{input}: {err}");
        }
    }
}
