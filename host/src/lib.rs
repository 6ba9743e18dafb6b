//! http-autoinstrument: OpenTelemetry traces for Go HTTP/HTTPS services, captured with eBPF.
//!
//! The modules follow the data, in the order it flows:
//! `discover` (which processes) -> `inspect` (what their binaries look like) -> `attach` (uprobes)
//! -> `capture` (ring buffer) -> `decode` (events to requests) -> `span` -> `plugins` -> `export`.
//! `pipeline` wires them together; `config` reads the agent's settings and `telemetry` serves
//! its own metrics and health.
pub mod attach;
pub mod capabilities;
pub mod capture;
pub mod config;
pub mod decode;
pub mod discover;
pub mod export;
pub mod inspect;
pub mod pipeline;
pub mod plugins;
pub mod span;
pub mod telemetry;
