//! Test support shared by the integration tests.
pub mod agent;
pub mod go_fixtures;
pub mod otlp_receiver;
pub mod plugins;
pub mod skip;
