//! Write http-autoinstrument span processor plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`], exported with [`export_plugin!`] and built as a
//! WebAssembly component (see `scripts/build-plugins.sh`). The agent hands it batches of spans;
//! the plugin reads them through [`Batch`] / [`SpanRef`] and records changes in [`Edits`].
//!
//! ```
//! use http_autoinstrument_plugin::{export_plugin, parse_settings, Batch, Edits, Plugin};
//!
//! #[derive(serde::Deserialize, Default)]
//! #[serde(default)]
//! struct Settings {
//!     drop_paths: Vec<String>,
//! }
//!
//! struct DropPaths(Settings);
//!
//! impl Plugin for DropPaths {
//!     fn init(settings: &str) -> Result<Self, String> {
//!         Ok(DropPaths(parse_settings(settings)?))
//!     }
//!
//!     fn process(&mut self, batch: &Batch, edits: &mut Edits) -> Result<(), String> {
//!         for span in batch.spans() {
//!             if let Some(path) = span.str_attribute("url.path") {
//!                 if self.0.drop_paths.iter().any(|p| p == path) {
//!                     edits.drop(&span);
//!                 } else {
//!                     edits.set_attribute(&span, "plugin.seen", true);
//!                 }
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! export_plugin!(DropPaths);
//!
//! // Plugin logic is testable natively, without Wasm:
//! use http_autoinstrument_plugin::testing::{run, TestSpan};
//! let mut plugin = DropPaths::init(r#"{"drop_paths": ["/healthz"]}"#).unwrap();
//! let out = run(&mut plugin, vec![
//!     TestSpan::new("GET").attr("url.path", "/healthz"),
//!     TestSpan::new("GET").attr("url.path", "/users"),
//! ]).unwrap();
//! assert_eq!(out.len(), 1);
//! assert_eq!(out[0].bool_attr("plugin.seen"), Some(true));
//! ```

mod batch;
pub mod bytes;
mod edits;
mod export;
mod log;
pub mod testing;

#[cfg(test)]
mod golden;

/// The code wit-bindgen generates for `wit/plugin.wit`. Plugins rarely need it directly.
pub mod bindings {
    wit_bindgen::generate!({
        world: "span-processor",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_span_processor",
        default_bindings_module: "http_autoinstrument_plugin::bindings",
        additional_derives: [PartialEq],
    });
}

pub use batch::{Batch, SpanRef, Value};
pub use edits::{Edit, Edits, IntoValue, NewValue};

/// Whether the span was served or sent by the traced process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    Server,
    Client,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}
pub use log::{debug, error, info, now_unix_nanos, random_u64, warn};

/// A span processor. One value lives for the plugin's lifetime: `init` builds it from the
/// plugin's settings, `process` is called once per batch.
pub trait Plugin: Sized + 'static {
    /// Builds the plugin from the `[settings]` table of its settings file, as JSON text
    /// (`{}` when there is none). An error refuses the load and is logged by the agent.
    fn init(settings: &str) -> Result<Self, String>;

    /// Reads `batch` and records changes in `edits`. Edits apply after the call returns,
    /// in order. An error applies the plugin's `on-error` policy to the whole batch.
    fn process(&mut self, batch: &Batch, edits: &mut Edits) -> Result<(), String>;
}

/// Parses settings JSON into `T`, with an error that says what is wrong.
pub fn parse_settings<T: serde::de::DeserializeOwned>(settings: &str) -> Result<T, String> {
    serde_json::from_str(settings).map_err(|e| format!("invalid plugin settings: {e}"))
}

#[doc(hidden)]
pub mod __private {
    pub use crate::export::{init, process};
}
