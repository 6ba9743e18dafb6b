//! What the criterion benches share: where the built plugins are, the agent's allocator and one
//! measuring budget.
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::Criterion;

/// The agent's allocator (host/src/main.rs), so the figures are the agent's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The example plugins as `scripts/build-plugins.sh` built them (`HTTP_AUTOINSTRUMENT_PLUGINS_DIR` overrides).
pub fn built_plugins() -> PathBuf {
    std::env::var_os("HTTP_AUTOINSTRUMENT_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"))
}

/// Criterion with the command line's options, and about 4 s per benchmark instead of 8 so the
/// whole report (`scripts/bench.sh`) fits in its time.
pub fn criterion() -> Criterion {
    Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}
