//! http-autoinstrument: OpenTelemetry traces for Go HTTP/HTTPS services, captured with eBPF.
//!
//! The modules follow the data, in the order it flows:
//! `discover` (which processes) -> `inspect` (what their binaries look like) -> `attach` (uprobes)
//! -> `capture` (ring buffer) -> `decode` (events to requests) -> `span` -> `plugins` -> `export`.
//! `pipeline` wires them together.
pub mod plugins;
pub mod span;
