//! Benchmark only: the attribute-scanning plugin of `bench-shape-packed` in the "full records
//! in, full records out" shape: every span arrives as a record of owned strings and lists and
//! every span goes back out, changed or not.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ world: "span-processor", path: "wit" });

    use bench::records::types::{Attribute, Span, SpanBatch, Value};

    struct Scan;

    impl exports::bench::records::processor::Guest for Scan {
        fn init(_settings: String) -> Result<(), String> {
            Ok(())
        }

        fn process(batch: SpanBatch) -> Result<Vec<Span>, String> {
            let mut spans = batch.spans;
            for span in &mut spans {
                if span.attributes.iter().any(|a| a.key == "url.query") {
                    let path = span
                        .attributes
                        .iter()
                        .find(|a| a.key == "url.path")
                        .and_then(|a| match &a.value {
                            Value::Str(s) => Some(s.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    span.attributes.push(Attribute {
                        key: "bench.query-seen".into(),
                        value: Value::Str(path),
                    });
                }
            }
            Ok(spans)
        }
    }

    export!(Scan);
}
