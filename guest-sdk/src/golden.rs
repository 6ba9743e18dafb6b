//! The agent's golden batches (`testdata/golden/`, made by the agent's encoder) read back
//! through this SDK, and the golden edits script encoded by it. The Python, JavaScript and Go
//! SDKs run the same checks against the same files.

use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};

use crate::bindings::http_autoinstrument::plugin::types::SpanBatch;
use crate::{Batch, Edit, Edits, NewValue, SpanKind, SpanRef, StatusCode, Value};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden")
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load(name: &str) -> (Batch, Json) {
    let dir = golden_dir().join(name);
    let raw = SpanBatch {
        text: read(dir.join("text.bin")),
        spans: read(dir.join("spans.bin")),
        attributes: read(dir.join("attributes.bin")),
        resources: read(dir.join("resources.bin")),
    };
    let expected = serde_json::from_slice(&read(dir.join("expected.json"))).unwrap();
    (Batch::from_raw(raw), expected)
}

fn value_json(key: &str, value: Value<'_>) -> Json {
    match value {
        Value::Str(s) => json!([key, "str", s]),
        Value::Int(i) => json!([key, "int", i.to_string()]),
        Value::Float(f) => json!([key, "float", f]),
        Value::Bool(b) => json!([key, "bool", b]),
    }
}

/// A span as this SDK reads it, in the form of `expected.json`.
fn span_json(span: &SpanRef<'_>) -> Json {
    let hex = |v: u128, digits: usize| format!("{v:0digits$x}");
    json!({
        "index": span.index(),
        "trace_id": hex(span.trace_id(), 32),
        "span_id": hex(span.span_id().into(), 16),
        "parent_span_id": span.parent_span_id().map(|p| hex(p.into(), 16)),
        "name": span.name(),
        "kind": match span.kind() { SpanKind::Server => "server", SpanKind::Client => "client" },
        "start_unix_nanos": span.start_unix_nanos().to_string(),
        "end_unix_nanos": span.end_unix_nanos().to_string(),
        "status": match span.status() {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        },
        "status_message": span.status_message(),
        "attributes": span.attributes().map(|(k, v)| value_json(k, v)).collect::<Vec<_>>(),
        "resource": span.resource_attributes().map(|(k, v)| value_json(k, v)).collect::<Vec<_>>(),
    })
}

#[test]
fn reads_the_agents_golden_batches() {
    for name in ["basic", "patched", "empty"] {
        let (batch, expected) = load(name);
        let read: Vec<Json> = batch.spans().map(|s| span_json(&s)).collect();
        assert_eq!(Json::from(read), expected, "golden batch {name}");
        // Lookups by key find what the full walk found, value for value.
        for span in batch.spans() {
            for (key, value) in span.attributes() {
                assert_eq!(
                    span.attribute(key).map(|v| value_json(key, v)),
                    Some(value_json(key, value))
                );
            }
            assert_eq!(span.attribute("no.such.key"), None);
        }
    }
}

/// `testdata/golden/edits/script.json` as edits of this SDK: what every SDK must encode,
/// byte for byte (the agent's test applies these bytes and checks `after.json`).
#[test]
fn encodes_the_golden_edits_script() {
    let dir = golden_dir().join("edits");
    let script: Vec<Json> = serde_json::from_slice(&read(dir.join("script.json"))).unwrap();
    let (batch, _) = load("basic");
    let mut edits = Edits::new();
    for step in &script {
        let span = batch.span(step["span"].as_u64().unwrap() as usize).unwrap();
        let text = |field: &str| step[field].as_str().unwrap().to_owned();
        match step["op"].as_str().unwrap() {
            "drop" => edits.drop(&span),
            "rename" => edits.rename(&span, text("name")),
            "remove_attribute" => edits.remove_attribute(&span, text("key")),
            "set_status" => {
                let code = match step["code"].as_str().unwrap() {
                    "ok" => StatusCode::Ok,
                    "error" => StatusCode::Error,
                    _ => StatusCode::Unset,
                };
                edits.set_status(&span, code, text("message"))
            }
            "set_attribute" => {
                let value = &step["value"];
                let value = if let Some(s) = value.get("str") {
                    NewValue::Str(s.as_str().unwrap().into())
                } else if let Some(i) = value.get("int") {
                    NewValue::Int(i.as_str().unwrap().parse().unwrap())
                } else if let Some(f) = value.get("float") {
                    NewValue::Float(f.as_f64().unwrap())
                } else {
                    NewValue::Boolean(value["bool"].as_bool().unwrap())
                };
                edits.set_attribute(&span, text("key"), value)
            }
            op => panic!("unknown op {op} in script.json"),
        }
    }
    assert_eq!(edits.len(), script.len());
    assert!(matches!(edits.to_vec()[12], Edit::Drop(2)));
    let raw = edits.into_raw();
    for (file, bytes) in [("ops.bin", &raw.ops), ("text.bin", &raw.text)] {
        let path = dir.join(file);
        if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
            std::fs::write(&path, bytes).unwrap();
        }
        assert!(
            read(path.clone()) == *bytes,
            "{} is not what this SDK encodes: if the change is deliberate, run \
             `UPDATE_GOLDEN=1 cargo test golden` here and in the agent",
            path.display()
        );
    }
}
