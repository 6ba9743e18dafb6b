//! Golden batches for the guest SDKs: batches this agent's encoder makes, committed under
//! `guest-sdk/testdata/golden/`, which every SDK (Rust, Python, JavaScript, Go) reads back in its
//! own tests and compares with `expected.json`; the edits every SDK must encode for one script,
//! and what this agent makes of them; and the layout constants of the other languages' SDKs,
//! generated from `plugin-layout`.
//!
//! These tests fail when a committed file is not what the code makes now; after a deliberate
//! change, `UPDATE_GOLDEN=1 cargo test -p http-autoinstrument golden` rewrites them (then run
//! every SDK's tests: `scripts/test.sh` does).

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value as Json};

use super::bindings::types::{Edits, SpanBatch};
use super::codec::{BatchEncoder, SharedBatch};
use super::edits::{apply, EditLimits, MAX_WRITTEN_BYTES_PER_SPAN};
use crate::span::{Attribute, AttributeValue, Resource, Span, SpanKind, SpanStatus};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/testdata/golden")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// Compares `path` with `contents`, or writes it under `UPDATE_GOLDEN=1`.
fn golden(path: &Path, contents: &[u8]) {
    if updating() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
        return;
    }
    let committed = std::fs::read(path).unwrap_or_default();
    assert!(
        committed == contents,
        "{} is not what the agent makes now: if the change is deliberate, run \
         `UPDATE_GOLDEN=1 cargo test -p http-autoinstrument golden` and every SDK's tests",
        path.display()
    );
}

fn resources() -> [Arc<Resource>; 2] {
    [
        Arc::new(Resource {
            attributes: vec![
                Attribute::new("service.name", "shop"),
                Attribute::new("process.pid", 4242i64),
            ],
        }),
        Arc::new(Resource {
            attributes: vec![
                Attribute::new("service.name", "cart"),
                Attribute::new("app.weight", AttributeValue::Float(1.5)),
                Attribute::new("app.canary", true),
            ],
        }),
    ]
}

/// Four spans that cover every field, value type and kind of sharing a reader meets: constant
/// keys and values written once per batch, a resource shared by two spans, a span without
/// attributes, extreme integers and times, non-ASCII text, ids with their top bit set.
fn spans() -> Vec<Span> {
    let [a, b] = resources();
    let ids = |first: u8| -> [u8; 16] { std::array::from_fn(|i| first.wrapping_add(i as u8)) };
    vec![
        Span {
            trace_id: ids(0xf1),
            span_id: [0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8],
            parent_span_id: None,
            name: Cow::Borrowed("GET"),
            kind: SpanKind::Server,
            start_unix_nanos: 1_700_000_000_123_456_789,
            end_unix_nanos: 1_700_000_000_125_456_789,
            status: SpanStatus::Unset,
            attributes: vec![
                Attribute::new("http.request.method", "GET"),
                Attribute::new("url.path", "/users/7".to_string()),
                Attribute::new("http.response.status_code", 200i64),
                Attribute::new("user_agent.original", "curl/8.5.0".to_string()),
                Attribute::new("server.port", 8080i64),
            ],
            resource: a.clone(),
        },
        Span {
            trace_id: ids(0x01),
            span_id: [0x80, 0, 0, 0, 0, 0, 0, 1],
            parent_span_id: Some([0xff; 8]),
            name: Cow::Owned("POST /orders".into()),
            kind: SpanKind::Client,
            start_unix_nanos: 1_700_000_001_000_000_000,
            end_unix_nanos: 1_700_000_001_250_000_000,
            status: SpanStatus::Error {
                description: "boom: ünïcödé ✓".into(),
            },
            attributes: vec![
                Attribute::new("http.request.method", "POST"),
                Attribute::new("url.path", "/orders/1?token=s3cret".to_string()),
                Attribute::new("http.response.status_code", 502i64),
                Attribute::new("app.ratio", AttributeValue::Float(0.25)),
                Attribute::new("app.cached", false),
                Attribute::new("app.min", i64::MIN),
                Attribute::new("app.max", i64::MAX),
                Attribute::new("app.empty", String::new()),
                Attribute::new("user_agent.original", "Googlebot/2.1".to_string()),
            ],
            resource: a,
        },
        Span {
            trace_id: ids(0x40),
            span_id: [0, 0, 0, 0, 0, 0, 0, 2],
            parent_span_id: Some([0; 8]),
            name: Cow::Borrowed("GET"),
            kind: SpanKind::Server,
            start_unix_nanos: 0,
            end_unix_nanos: 0,
            status: SpanStatus::Ok,
            attributes: vec![],
            resource: b.clone(),
        },
        Span {
            trace_id: ids(0x90),
            span_id: [0xff; 8],
            parent_span_id: None,
            name: Cow::Owned("GET /healthz".into()),
            kind: SpanKind::Server,
            start_unix_nanos: 1,
            end_unix_nanos: u64::MAX,
            status: SpanStatus::Unset,
            attributes: vec![
                Attribute::new("url.path", "/healthz".to_string()),
                Attribute::new("http.route", "/healthz"),
                Attribute::new("app.negative_zero", AttributeValue::Float(-0.0)),
                Attribute::new("app.tiny", AttributeValue::Float(5e-324)),
            ],
            resource: b,
        },
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A list of attributes as `[key, type, value]`: integers as decimal text, so that every
/// language reads them exactly (JSON numbers are doubles in JavaScript).
fn attributes_json(attributes: &[Attribute]) -> Json {
    attributes
        .iter()
        .map(|a| match &a.value {
            AttributeValue::Str(s) => json!([a.key, "str", s]),
            AttributeValue::Int(i) => json!([a.key, "int", i.to_string()]),
            AttributeValue::Float(f) => json!([a.key, "float", f]),
            AttributeValue::Bool(b) => json!([a.key, "bool", b]),
        })
        .collect()
}

/// What a reader of the batch must find: the spans themselves, not their encoding.
fn expected_json(spans: &[Span]) -> Json {
    spans
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let (status, message) = match &s.status {
                SpanStatus::Unset => ("unset", ""),
                SpanStatus::Ok => ("ok", ""),
                SpanStatus::Error { description } => ("error", description.as_str()),
            };
            json!({
                "index": index,
                "trace_id": hex(&s.trace_id),
                "span_id": hex(&s.span_id),
                "parent_span_id": s.parent_span_id.map(|p| hex(&p)),
                "name": s.name,
                "kind": match s.kind { SpanKind::Server => "server", SpanKind::Client => "client" },
                "start_unix_nanos": s.start_unix_nanos.to_string(),
                "end_unix_nanos": s.end_unix_nanos.to_string(),
                "status": status,
                "status_message": message,
                "attributes": attributes_json(&s.attributes),
                "resource": attributes_json(&s.resource.attributes),
            })
        })
        .collect()
}

fn pretty(json: &Json) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(json).unwrap();
    text.push(b'\n');
    text
}

/// A batch's rows with each text range replaced by the text it points to. The encoder writes a
/// constant string once per batch, found by its address in a direct-mapped table, so two
/// constants that meet in one slot (which depends on where the linker put them) cost a second
/// copy: which bytes of the text a range points to varies from build to build, what it points
/// to does not.
fn resolved(batch: &SpanBatch) -> Json {
    use http_autoinstrument_plugin_layout::{
        u32_at, ATTRIBUTE_KEY, ATTRIBUTE_ROW, ATTRIBUTE_TYPE, ATTRIBUTE_VALUE, SPAN_NAME, SPAN_ROW,
        SPAN_STATUS_MESSAGE, TYPE_STR,
    };
    let resolve = |row: &[u8], ranges: &[usize]| {
        let mut row = row.to_vec();
        let mut texts = Vec::new();
        for &at in ranges {
            let start = u32_at(&row, at) as usize;
            let end = start + u32_at(&row, at + 4) as usize;
            texts.push(String::from_utf8(batch.text[start..end].to_vec()).unwrap());
            row[at..at + 4].fill(0);
        }
        json!([hex(&row), texts])
    };
    let spans: Vec<Json> = batch
        .spans
        .chunks(SPAN_ROW)
        .map(|row| resolve(row, &[SPAN_NAME, SPAN_STATUS_MESSAGE]))
        .collect();
    let attributes: Vec<Json> = batch
        .attributes
        .chunks(ATTRIBUTE_ROW)
        .map(|row| match row[ATTRIBUTE_TYPE] {
            TYPE_STR => resolve(row, &[ATTRIBUTE_KEY, ATTRIBUTE_VALUE]),
            _ => resolve(row, &[ATTRIBUTE_KEY]),
        })
        .collect();
    json!({"spans": spans, "attributes": attributes, "resources": hex(&batch.resources)})
}

/// Writes the batch under `UPDATE_GOLDEN=1`; otherwise checks that the committed batch holds
/// the rows this encoder makes, pointing to the same text (see [`resolved`]).
fn write_batch(name: &str, batch: &SpanBatch, spans: &[Span]) {
    let dir = golden_dir().join(name);
    let files = [
        ("text.bin", &batch.text),
        ("spans.bin", &batch.spans),
        ("attributes.bin", &batch.attributes),
        ("resources.bin", &batch.resources),
    ];
    if updating() {
        for (file, bytes) in files {
            golden(&dir.join(file), bytes);
        }
    } else {
        let read = |file: &str| std::fs::read(dir.join(file)).unwrap_or_default();
        let committed = SpanBatch {
            text: read("text.bin"),
            spans: read("spans.bin"),
            attributes: read("attributes.bin"),
            resources: read("resources.bin"),
        };
        assert!(
            resolved(&committed) == resolved(batch),
            "{} is not what the agent's encoder makes now: if the change is deliberate, run \
             `UPDATE_GOLDEN=1 cargo test -p http-autoinstrument golden` and every SDK's tests",
            dir.display()
        );
    }
    golden(&dir.join("expected.json"), &pretty(&expected_json(spans)));
}

/// A batch as the first plugin of a chain gets it.
#[test]
fn basic_batch() {
    let spans = spans();
    write_batch("basic", BatchEncoder::default().encode(&spans), &spans);
}

/// A batch as a later plugin gets it after an earlier one edited a few spans: the chain patches
/// the encoding, which leaves rows and text nothing refers to, out of order.
#[test]
fn patched_batch() {
    let mut spans: Vec<Span> = spans().into_iter().chain(spans()).collect();
    let mut shared = SharedBatch::default();
    shared.get(&spans);
    spans[1].set_attribute("url.path", "/orders/1?token=REDACTED");
    spans[1].set_attribute("app.redacted", true);
    spans[6].name = "GET /status".into();
    let dropped = [false, false, true, false, false, false, false, true];
    shared.update(&spans, &[1, 6], &dropped);
    let mut flags = dropped.iter();
    spans.retain(|_| !flags.next().unwrap());
    write_batch("patched", shared.get(&spans), &spans);
}

#[test]
fn empty_batch() {
    write_batch("empty", BatchEncoder::default().encode(&[]), &[]);
}

/// The edits of `edits/script.json`, as the Rust SDK encodes them (its test writes
/// `edits/ops.bin` and `edits/text.bin`, and the other SDKs' tests must encode the same bytes),
/// applied by this agent to the basic batch's spans: `edits/after.json` is what comes out.
#[test]
fn golden_edits_apply_as_the_script_says() {
    let dir = golden_dir().join("edits");
    let read = |file: &str| {
        std::fs::read(dir.join(file)).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (written by the Rust SDK's test: \
                 `cd guest-sdk && UPDATE_GOLDEN=1 cargo test golden`)",
                dir.join(file).display()
            )
        })
    };
    let edits = Edits {
        ops: read("ops.bin"),
        text: read("text.bin"),
    };
    let mut spans = spans();
    let limits = EditLimits {
        max_value_bytes: 4096,
        max_key_bytes: 256,
        max_attributes_per_span: 128,
        max_written_bytes_per_span: MAX_WRITTEN_BYTES_PER_SPAN,
    };
    let mut dropped = vec![false; spans.len()];
    let applied = apply(&mut spans, &edits, &limits, &mut dropped).unwrap();
    assert_eq!((applied.rejected, applied.truncated), (0, 0));
    let mut flags = dropped.iter();
    spans.retain(|_| !flags.next().unwrap());
    golden(&dir.join("after.json"), &pretty(&expected_json(&spans)));
    // Spot checks, so that a wrong golden file cannot be rewritten into place unnoticed.
    assert_eq!(spans.len(), 3);
    assert_eq!(spans[0].name, "GET /users/{id} — café");
    assert_eq!(
        spans[0].attribute("app.count"),
        Some(&AttributeValue::Int(i64::MIN))
    );
    assert_eq!(spans[0].attribute("user_agent.original"), None);
    assert_eq!(
        spans[1].status,
        SpanStatus::Error {
            description: "upstream failed".into()
        }
    );
    assert_eq!(spans[2].status, SpanStatus::Ok);
}

/// The layout constants of the Python, JavaScript and Go SDKs, generated from `plugin-layout`.
#[test]
fn other_languages_layout_files() {
    use http_autoinstrument_plugin_layout::ALL;
    let header = "generated from plugin-layout/src/lib.rs by host/src/plugins/golden.rs \
                  (UPDATE_GOLDEN=1 cargo test -p http-autoinstrument golden); do not edit";
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
    let mut py = format!("# Row layouts of wit/plugin.wit, {header}.\n");
    let mut js = format!("// Row layouts of wit/plugin.wit, {header}.\n");
    let mut go =
        format!("// Row layouts of wit/plugin.wit, {header}.\n\npackage plugin\n\nconst (\n");
    // As gofmt aligns a block of constants.
    let width = ALL.iter().map(|(n, _)| go_name(n).len()).max().unwrap_or(0);
    for (name, value) in ALL {
        py.push_str(&format!("{name} = {value}\n"));
        js.push_str(&format!("export const {name} = {value};\n"));
        go.push_str(&format!("\t{:width$} = {value}\n", go_name(name)));
    }
    go.push_str(")\n");
    golden(
        &sdk.join("python/http_autoinstrument_plugin/layout.py"),
        py.as_bytes(),
    );
    golden(&sdk.join("js/layout.js"), js.as_bytes());
    golden(&sdk.join("go/plugin/layout.go"), go.as_bytes());
}

/// `SPAN_ROW` -> `spanRow`: unexported in the Go package.
fn go_name(name: &str) -> String {
    let mut out = String::new();
    for (i, word) in name.split('_').enumerate() {
        let lower = word.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            out.push_str(&lower[..1].to_ascii_uppercase());
            out.push_str(&lower[1..]);
        }
    }
    out
}
