//! The example plugins as `scripts/build-plugins.sh` builds them.
#![allow(dead_code)] // each test binary uses a different part of this file

use std::path::{Path, PathBuf};

use super::skip::skip;

/// The built example plugin `name` (e.g. "filter" -> target/plugins/filter.wasm), or `None` (with
/// a note) when it is not built. Under CI=true a missing plugin fails the test.
pub fn built_plugin(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("HTTP_AUTOINSTRUMENT_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"));
    let path = dir.join(format!("{name}.wasm"));
    if path.is_file() {
        return Some(path);
    }
    skip(&format!(
        "plugin {} is not built: run scripts/build-plugins.sh (or set HTTP_AUTOINSTRUMENT_PLUGINS_DIR)",
        path.display()
    ));
    None
}
