//! A deliberately misbehaving plugin for the agent's fault tests (not for production).
//!
//! Passes spans through untouched unless a span of the batch carries the attribute `fault`,
//! whose value picks the misbehaviour for that batch:
//! `loop` (never returns), `trap` (panics), `memory-bomb` (allocates until refused),
//! `error` (returns an error), `huge-value` (sets a 16 MiB attribute),
//! `many-attributes` (sets 100 000 attributes), `bad-index` (edits a span outside the batch),
//! `stderr` (writes a line to its standard error through WASI, as an interpreter's `print` or a
//! traceback does, and passes the batch).

use http_autoinstrument_plugin::{export_plugin, Batch, Edit, Edits, Plugin};

pub struct Faults;

impl Plugin for Faults {
    fn init(_settings: &str) -> Result<Self, String> {
        Ok(Faults)
    }

    fn process(&mut self, batch: &Batch, edits: &mut Edits) -> Result<(), String> {
        let Some(span) = batch.spans().find(|s| s.attribute("fault").is_some()) else {
            return Ok(());
        };
        match span.str_attribute("fault").unwrap_or("") {
            "loop" => loop {
                std::hint::black_box(&span);
            },
            "trap" => panic!("test-faults: trap requested"),
            "memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "error" => Err("test-faults: error requested".into()),
            "huge-value" => {
                edits.set_attribute(&span, "huge", "x".repeat(16 << 20));
                Ok(())
            }
            "many-attributes" => {
                for i in 0..100_000 {
                    edits.set_attribute(&span, format!("attr.{i}"), i as i64);
                }
                Ok(())
            }
            "stderr" => {
                eprintln!("test-faults: a line on stderr");
                Ok(())
            }
            "bad-index" => {
                edits.push_raw(Edit::Drop(batch.len() as u32 + 7));
                Ok(())
            }
            other => Err(format!("test-faults: unknown fault {other:?}")),
        }
    }
}

export_plugin!(Faults);
