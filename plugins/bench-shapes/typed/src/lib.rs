//! Benchmark only: the attribute-scanning plugin of `bench-shape-packed` in the previous
//! plugin world's shape (typed span and attribute records over one text buffer in, a list of
//! typed edits out), written the way the previous SDK read it.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ world: "span-processor", path: "wit" });

    use bench::typed::types::{Edit, NewValue, SetAttribute, SpanBatch, Text, Value};

    fn text(batch: &SpanBatch, t: Text) -> &str {
        let start = t.offset as usize;
        let end = start.saturating_add(t.len as usize);
        batch
            .text
            .get(start..end)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    fn find(batch: &SpanBatch, span: usize, key: &str) -> Option<Value> {
        let range = batch.spans[span].attributes;
        let start = range.start as usize;
        let end = start.saturating_add(range.len as usize);
        batch
            .attributes
            .get(start..end)?
            .iter()
            .find(|a| text(batch, a.key) == key)
            .map(|a| a.value)
    }

    struct Scan;

    impl exports::bench::typed::processor::Guest for Scan {
        fn init(_settings: String) -> Result<(), String> {
            Ok(())
        }

        fn process(batch: SpanBatch) -> Result<Vec<Edit>, String> {
            let mut edits = Vec::new();
            for i in 0..batch.spans.len() {
                if find(&batch, i, "url.query").is_some() {
                    let path = match find(&batch, i, "url.path") {
                        Some(Value::Str(t)) => text(&batch, t),
                        _ => "",
                    };
                    edits.push(Edit::SetAttribute(SetAttribute {
                        span: i as u32,
                        key: "bench.query-seen".into(),
                        value: NewValue::Str(path.into()),
                    }));
                }
            }
            Ok(edits)
        }
    }

    export!(Scan);
}
