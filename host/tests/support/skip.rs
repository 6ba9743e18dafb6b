//! Tests that cannot run here: whether they may skip, and the record of those that did.
//!
//! The one place that decides: every test binary (and the benchmarks) includes this file. Under CI
//! (`CI=true` or `CI=1`, as CI services set it) a test that cannot run fails. Elsewhere it says
//! "skipped" and, when `HTTP_AUTOINSTRUMENT_SKIPPED` names a file (scripts/test.sh sets it), adds
//! its name there, so that the suite's last line counts it as skipped rather than passed.
#![allow(dead_code)] // each test binary uses a different part of this file

use std::io::Write;

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Records that the calling test does not run, for `why` (which names the fix); under CI, fails.
pub fn skip(why: &str) {
    assert!(!in_ci(), "{why} (under CI every test must run)");
    eprintln!("skipped: {why}");
    let Some(path) = std::env::var_os("HTTP_AUTOINSTRUMENT_SKIPPED") else {
        return;
    };
    // libtest names each test's thread after the test.
    let name = std::thread::current().name().unwrap_or("?").to_owned();
    let line = format!("{}::{name}\t{why}\n", env!("CARGO_CRATE_NAME"));
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = appended {
        eprintln!("cannot record the skip in {}: {e}", path.to_string_lossy());
    }
}
