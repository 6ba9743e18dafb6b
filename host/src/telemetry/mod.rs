//! The agent's own telemetry endpoint: `/metrics` (Prometheus), `/healthz` and `/readyz`.
//!
//! - `metrics`: the collector that reads the stages' counters at scrape time.
//! - `health`: liveness and readiness.
//! - `server`: the small HTTP/1.1 server for both.
mod health;
mod metrics;
mod server;

pub use health::Health;
pub use metrics::{registry, render, MetricSources};
pub use server::{serve, TelemetryServer};
