//! Why a plugin call failed.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The call ran past its time budget.
    Timeout,
    /// The plugin needed more memory than its cap.
    OutOfMemory,
    /// Any other trap (panic, unreachable, out-of-bounds access, ...).
    Trap,
    /// The plugin returned an error.
    PluginError,
    /// The plugin returned edits the host refuses (index outside the batch, too many edits).
    InvalidOutput,
    /// The plugin is suspended after repeated failures; it was not called.
    Suspended,
    /// A new instance (after an earlier trap) could not be created or initialised.
    Instantiation,
    /// The plugin failed to load and its policy holds the chain closed; it was not called.
    NotLoaded,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Timeout => "timeout",
            FailureKind::OutOfMemory => "out-of-memory",
            FailureKind::Trap => "trap",
            FailureKind::PluginError => "plugin-error",
            FailureKind::InvalidOutput => "invalid-output",
            FailureKind::Suspended => "suspended",
            FailureKind::Instantiation => "instantiation",
            FailureKind::NotLoaded => "not-loaded",
        })
    }
}

/// Classifies an error from calling into a plugin.
pub fn classify(error: &wasmtime::Error, memory_exceeded: bool) -> FailureKind {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => FailureKind::Timeout,
        _ if memory_exceeded => FailureKind::OutOfMemory,
        _ => FailureKind::Trap,
    }
}
