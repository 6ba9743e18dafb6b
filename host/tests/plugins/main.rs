//! Plugin host tests against the example plugins built by `scripts/build-plugins.sh`.
//!
//! Run: `scripts/build-plugins.sh && cargo test -p http-autoinstrument --test plugins`.
//! Without the built plugins the tests are skipped with a note, except under `CI=true`, where
//! they fail.

mod chain;
mod cli;
mod configmap;
mod faults;
mod languages;
mod reload;
mod support;
