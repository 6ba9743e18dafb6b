//! WebAssembly span processor plugins.
//!
//! Users drop components targeting `wit/plugin.wit` (world `span-processor`) into the plugins
//! directory; [`PluginChain::process`] runs every batch of spans through them in file-name
//! order. The directory is watched: plugins are added, replaced and removed without a restart
//! and without losing a span (a batch in flight finishes with the version it started with).
//!
//! Every call runs under a time budget (epoch interruption) and a memory cap; a plugin that
//! traps, times out, runs out of memory or returns invalid data only affects that batch in that
//! plugin, according to its `on-error` policy, and a plugin that keeps failing is suspended with
//! backoff.

mod bindings;
mod chain;
mod check;
pub mod cli;
mod closed;
mod codec;
mod config;
mod edits;
mod engine;
mod epoch;
mod failure;
#[cfg(test)]
mod golden;
mod instance;
pub mod jsonl;
mod record;
mod reload;
pub mod scaffold;
mod state;
mod stats;

pub use chain::{DropCause, DropReport, Outcome, PluginChain, PluginWatcher};
pub use check::{check_component, ComponentReport, ImportGrant, WORLD_EXPORT};
pub use config::{Grants, OnError, PluginSettings, PluginsConfig};
pub use failure::FailureKind;
pub use record::SpanRecorder;
pub use reload::ReloadReport;
pub use stats::StatsSnapshot;
