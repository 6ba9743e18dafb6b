//! The host's capabilities: logging, clock, randomness.

use crate::bindings::http_autoinstrument::plugin::host::{self, Level};

pub fn debug(message: &str) {
    host::log(Level::Debug, message);
}

pub fn info(message: &str) {
    host::log(Level::Info, message);
}

pub fn warn(message: &str) {
    host::log(Level::Warn, message);
}

pub fn error(message: &str) {
    host::log(Level::Error, message);
}

/// Wall-clock time in nanoseconds since the Unix epoch.
pub fn now_unix_nanos() -> u64 {
    host::now_unix_nanos()
}

pub fn random_u64() -> u64 {
    host::random_u64()
}
