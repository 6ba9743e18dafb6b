//! Benchmark only. The attribute-scanning plugin all three `bench-shape-*` crates implement:
//! every span's attributes are searched for `url.query`; a span that has one gets
//! `bench.query-seen` set to its `url.path`. This one uses the plugin world's packed shape
//! through the guest SDK.

use http_autoinstrument_plugin::{export_plugin, Batch, Edits, Plugin};

pub struct Scan;

impl Plugin for Scan {
    fn init(_settings: &str) -> Result<Self, String> {
        Ok(Scan)
    }

    fn process(&mut self, batch: &Batch, edits: &mut Edits) -> Result<(), String> {
        for span in batch.spans() {
            if span.attribute("url.query").is_some() {
                let path = span.str_attribute("url.path").unwrap_or("");
                edits.set_attribute(&span, "bench.query-seen", path);
            }
        }
        Ok(())
    }
}

export_plugin!(Scan);
