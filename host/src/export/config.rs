//! Where spans go: the configuration file's `export` section ([`ExportSection`]), which the
//! standard OTLP exporter variables override key by key, built once into [`ExportConfig`].
//!
//! The variables are read from a map rather than from the process environment so tests are
//! hermetic. Spec: <https://opentelemetry.io/docs/specs/otel/protocol/exporter/>.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ExportLimits;

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

/// The OTLP transport, as the file, the variables and `--otlp-protocol` spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
pub enum Protocol {
    #[serde(rename = "grpc")]
    #[value(name = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    #[value(name = "http/protobuf")]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
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
}

/// Everything the OTLP exporter needs, already validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpConfig {
    /// Full URL: for http/protobuf it includes the `/v1/traces` path.
    pub endpoint: String,
    /// Where the endpoint came from (a variable, a flag or a file key), for the startup log
    /// and error messages.
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

/// Where spans go, as the configuration file's `export` section spells it. The
/// `OTEL_EXPORTER_OTLP_*` variables override its keys one by one ([`ExportSection::apply_env`]);
/// every value is checked as it is read, so [`ExportSection::build`] cannot fail.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExportSection {
    /// Base OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`); none and no `traces_endpoint`: stdout.
    #[serde(deserialize_with = "endpoint")]
    pub endpoint: Option<String>,
    /// Traces endpoint used as is (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    #[serde(deserialize_with = "endpoint")]
    pub traces_endpoint: Option<String>,
    pub protocol: Option<Protocol>,
    /// Sent with every export. Printed redacted: values are often credentials.
    #[serde(deserialize_with = "headers", serialize_with = "serialize_redacted")]
    pub headers: BTreeMap<String, String>,
    pub timeout_ms: Option<NonZeroU64>,
    /// `OTEL_EXPORTER_OTLP_COMPRESSION`: `gzip` or `none` (the default).
    pub compression: Option<Compression>,
    /// Spans held at most while the collector is slow or down; more are dropped and counted.
    pub queue_capacity: NonZeroUsize,
    pub max_batch_size: NonZeroUsize,
    pub max_batch_delay_ms: u64,
    /// Where `endpoint` and `traces_endpoint` were set, named in the startup log and errors.
    #[serde(skip)]
    pub endpoint_from: &'static str,
    #[serde(skip)]
    pub traces_endpoint_from: &'static str,
}

impl Default for ExportSection {
    fn default() -> Self {
        let limits = ExportLimits::default();
        ExportSection {
            endpoint: None,
            traces_endpoint: None,
            protocol: None,
            headers: BTreeMap::new(),
            timeout_ms: None,
            compression: None,
            queue_capacity: NonZeroUsize::new(limits.queue_capacity).unwrap_or(NonZeroUsize::MIN),
            max_batch_size: NonZeroUsize::new(limits.max_batch_size).unwrap_or(NonZeroUsize::MIN),
            max_batch_delay_ms: limits.max_batch_delay.as_millis() as u64,
            endpoint_from: "export.endpoint",
            traces_endpoint_from: "export.traces_endpoint",
        }
    }
}

impl ExportSection {
    /// Applies the `OTEL_EXPORTER_OTLP_*` variables set (non-empty) in `vars`. As the spec says,
    /// a traces-specific variable wins over the generic one; errors name the variable.
    pub fn apply_env(&mut self, vars: &HashMap<String, String>) -> Result<(), ConfigError> {
        let get = |names: &[&'static str]| {
            names.iter().find_map(|&name| {
                vars.get(name)
                    .map(|v| v.trim())
                    .filter(|v| !v.is_empty())
                    .map(|v| (name, v))
            })
        };
        if let Some((var, value)) = get(&[TRACES_PROTOCOL, PROTOCOL]) {
            self.protocol = Some(Protocol::parse(var, value)?);
        }
        if let Some((var, value)) = get(&[TRACES_ENDPOINT, TRACES_ENDPOINT_ALIAS]) {
            validate_endpoint(var, value)?;
            self.traces_endpoint = Some(value.to_owned());
            self.traces_endpoint_from = var;
        }
        if let Some((var, value)) = get(&[ENDPOINT]) {
            validate_endpoint(var, value)?;
            self.endpoint = Some(value.to_owned());
            self.endpoint_from = var;
        }
        if let Some((var, value)) = get(&[TRACES_HEADERS, HEADERS]) {
            self.headers = parse_headers(var, value)?.into_iter().collect();
        }
        if let Some((var, value)) = get(&[TRACES_TIMEOUT, TIMEOUT]) {
            let ms = value
                .parse::<NonZeroU64>()
                .map_err(|_| ConfigError::Timeout {
                    var,
                    value: value.to_owned(),
                })?;
            self.timeout_ms = Some(ms);
        }
        if let Some((var, value)) = get(&[TRACES_COMPRESSION, COMPRESSION]) {
            self.compression = Some(Compression::parse(var, value)?);
        }
        Ok(())
    }

    /// What the exporter takes. A traces endpoint is used as is; a base endpoint gets the
    /// signal's path for http/protobuf (gRPC has none: the service name is the path).
    pub fn build(&self) -> ExportConfig {
        let protocol = self.protocol.unwrap_or(Protocol::HttpProtobuf);
        let (endpoint_var, endpoint) = match (&self.traces_endpoint, &self.endpoint) {
            (Some(traces), _) => (self.traces_endpoint_from, traces.clone()),
            (None, Some(base)) => (
                self.endpoint_from,
                match protocol {
                    Protocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
                    Protocol::Grpc => base.clone(),
                },
            ),
            (None, None) => return ExportConfig::Stdout,
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for (name, value) in &self.headers {
            // gRPC metadata wants lower-case names; a later duplicate replaces the earlier one.
            let name = name.to_ascii_lowercase();
            headers.retain(|(k, _)| *k != name);
            headers.push((name, value.clone()));
        }
        ExportConfig::Otlp(OtlpConfig {
            endpoint,
            endpoint_var,
            protocol,
            headers,
            timeout: self
                .timeout_ms
                .map_or(DEFAULT_TIMEOUT, |ms| Duration::from_millis(ms.get())),
            compression: self.compression.unwrap_or(Compression::None),
        })
    }

    pub fn limits(&self) -> ExportLimits {
        ExportLimits {
            queue_capacity: self.queue_capacity.get(),
            max_batch_size: self.max_batch_size.get(),
            max_batch_delay: Duration::from_millis(self.max_batch_delay_ms),
            ..ExportLimits::default()
        }
    }
}

impl ExportConfig {
    /// The configuration the `OTEL_*` variables in `vars` alone give (no file, no flags).
    pub fn from_env_map(vars: &HashMap<String, String>) -> Result<ExportConfig, ConfigError> {
        let mut section = ExportSection::default();
        section.apply_env(vars)?;
        Ok(section.build())
    }
}

/// What makes `value` unusable as an OTLP endpoint, if anything.
fn endpoint_problem(value: &str) -> Option<String> {
    // Checked first: without a scheme `http::Uri` only says "invalid format".
    if !value.contains("://") {
        return Some("the URL has no scheme (add http://)".into());
    }
    let uri: http::Uri = match value.parse() {
        Ok(uri) => uri,
        Err(e) => return Some(format!("{e}")),
    };
    match uri.scheme_str() {
        Some("http") => {}
        // Neither transport is built with TLS (it would add rustls/ring to the agent); failing
        // here beats failing on every export later.
        Some("https") => return Some(
            "https is not supported by this build (no TLS); send to a local collector over http://"
                .into(),
        ),
        Some(other) => return Some(format!("scheme {other:?} is not http")),
        None => return Some("the URL has no scheme (add http://)".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Some("the URL has no host".into());
    }
    None
}

/// The endpoint rules for a file key or a flag: the message names the expected form.
pub fn check_endpoint(url: &str) -> Result<(), String> {
    match endpoint_problem(url) {
        None => Ok(()),
        Some(reason) => Err(format!(
            "{url:?} is not a usable OTLP endpoint: {reason}; expected a URL such as \
             http://otel-collector:4318 (http/protobuf) or http://otel-collector:4317 (grpc)"
        )),
    }
}

fn check_header(name: &str, value: &str) -> Result<(), String> {
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

fn endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let url = Option::<String>::deserialize(d)?;
    if let Some(url) = &url {
        check_endpoint(url).map_err(serde::de::Error::custom)?;
    }
    Ok(url)
}

fn headers<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let headers = BTreeMap::<String, String>::deserialize(d)?;
    for (name, value) in &headers {
        check_header(name, value).map_err(serde::de::Error::custom)?;
    }
    Ok(headers)
}

/// Header values are usually credentials: the effective configuration shows only the names.
fn serialize_redacted<S: Serializer>(
    headers: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(headers.keys().map(|k| (k, "<redacted>")))
}

fn validate_endpoint(var: &'static str, value: &str) -> Result<(), ConfigError> {
    match endpoint_problem(value) {
        None => Ok(()),
        Some(reason) => Err(ConfigError::Endpoint {
            var,
            value: value.to_owned(),
            reason,
        }),
    }
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
