//! Benchmark only: hosts for the two boundary shapes the plugin world did not take, so they can
//! be measured against it on the same spans with the same plugin logic (`bench-shape-*`
//! plugins: find `url.query`, and if present set `bench.query-seen` to `url.path`).
//!
//! * `typed`: the 0.1.0 world. Typed span and attribute records over one packed text buffer
//!   in, a list of typed edits out. Encoding and edit application are the 0.1.0 host's.
//! * `records`: full records in (owned strings, a list of attributes per span), the surviving
//!   spans as full records out, converted back to spans with the host's value limit applied.
//!
//! Each does what the agent would have to do per batch: encode, call, apply the result.

use std::path::Path;
use std::sync::Arc;

use http_autoinstrument::span::{Attribute, AttributeValue, Resource, Span, SpanKind, SpanStatus};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store};

const MAX_VALUE_BYTES: usize = 4096;
const MAX_KEY_BYTES: usize = 256;
const MAX_ATTRIBUTES: usize = 128;

mod typed_wit {
    wasmtime::component::bindgen!({
        world: "span-processor",
        path: "../plugins/bench-shapes/typed/wit",
    });
}

mod records_wit {
    wasmtime::component::bindgen!({
        world: "span-processor",
        path: "../plugins/bench-shapes/records/wit",
    });
}

/// The engine settings of the agent's plugin engine (epoch interruption on).
fn engine() -> Engine {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    Engine::new(&config).unwrap()
}

fn store(engine: &Engine) -> Store<()> {
    let mut store = Store::new(engine, ());
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_VALUE_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

pub struct Typed {
    store: Store<()>,
    bindings: typed_wit::SpanProcessor,
    batch: typed_wit::bench::typed::types::SpanBatch,
    resources: Vec<*const Resource>,
}

impl Typed {
    pub fn load(path: &Path) -> Self {
        use typed_wit::bench::typed::types::SpanBatch;
        let engine = engine();
        let component = Component::from_file(&engine, path).unwrap();
        let mut store = store(&engine);
        let bindings =
            typed_wit::SpanProcessor::instantiate(&mut store, &component, &Linker::new(&engine))
                .unwrap();
        bindings
            .bench_typed_processor()
            .call_init(&mut store, "{}")
            .unwrap()
            .unwrap();
        Typed {
            store,
            bindings,
            batch: SpanBatch {
                text: Vec::new(),
                attributes: Vec::new(),
                resources: Vec::new(),
                spans: Vec::new(),
            },
            resources: Vec::new(),
        }
    }

    pub fn process(&mut self, mut spans: Vec<Span>) -> Vec<Span> {
        use typed_wit::bench::typed::types::{Edit, NewValue, StatusCode};
        self.encode(&spans);
        let edits = self
            .bindings
            .bench_typed_processor()
            .call_process(&mut self.store, &self.batch)
            .unwrap()
            .unwrap();
        let mut dropped = vec![false; spans.len()];
        for edit in edits {
            match edit {
                Edit::Drop(i) => dropped[i as usize] = true,
                Edit::Rename(r) => spans[r.span as usize].name = cut(&r.name).into(),
                Edit::SetAttribute(s) => {
                    let span = &mut spans[s.span as usize];
                    if s.key.is_empty() || s.key.len() > MAX_KEY_BYTES {
                        continue;
                    }
                    let value = match s.value {
                        NewValue::Str(v) => AttributeValue::from(cut(&v)),
                        NewValue::Int(i) => AttributeValue::Int(i),
                        NewValue::Float(f) => AttributeValue::Float(f),
                        NewValue::Boolean(b) => AttributeValue::Bool(b),
                    };
                    let exists = span.attributes.iter().any(|a| a.key == s.key);
                    if exists || span.attributes.len() < MAX_ATTRIBUTES {
                        span.set_attribute(&s.key, value);
                    }
                }
                Edit::RemoveAttribute(r) => {
                    spans[r.span as usize].remove_attribute(&r.key);
                }
                Edit::SetStatus(s) => {
                    spans[s.span as usize].status = match s.code {
                        StatusCode::Unset => SpanStatus::Unset,
                        StatusCode::Ok => SpanStatus::Ok,
                        StatusCode::Error => SpanStatus::Error {
                            description: cut(&s.message),
                        },
                    }
                }
            }
        }
        let mut flags = dropped.into_iter();
        spans.retain(|_| !flags.next().unwrap_or(false));
        spans
    }

    /// The 0.1.0 host's encoder.
    fn encode(&mut self, spans: &[Span]) {
        use typed_wit::bench::typed::types as wit;
        fn push_text(text: &mut Vec<u8>, s: &str) -> wit::Text {
            let offset = text.len() as u32;
            text.extend_from_slice(s.as_bytes());
            wit::Text {
                offset,
                len: s.len() as u32,
            }
        }
        fn push_attributes(b: &mut wit::SpanBatch, attrs: &[Attribute]) -> wit::AttributeRange {
            let start = b.attributes.len() as u32;
            for a in attrs {
                let key = push_text(&mut b.text, &a.key);
                let value = match &a.value {
                    AttributeValue::Str(s) => wit::Value::Str(push_text(&mut b.text, s)),
                    AttributeValue::Int(i) => wit::Value::Int(*i),
                    AttributeValue::Float(f) => wit::Value::Float(*f),
                    AttributeValue::Bool(v) => wit::Value::Boolean(*v),
                };
                b.attributes.push(wit::Attribute { key, value });
            }
            wit::AttributeRange {
                start,
                len: attrs.len() as u32,
            }
        }
        let b = &mut self.batch;
        b.text.clear();
        b.attributes.clear();
        b.resources.clear();
        b.spans.clear();
        self.resources.clear();
        for span in spans {
            let ptr = Arc::as_ptr(&span.resource);
            let resource = match self.resources.iter().position(|p| *p == ptr) {
                Some(i) => i as u32,
                None => {
                    let attributes = push_attributes(b, &span.resource.attributes);
                    b.resources.push(wit::Resource { attributes });
                    self.resources.push(ptr);
                    (self.resources.len() - 1) as u32
                }
            };
            let attributes = push_attributes(b, &span.attributes);
            let name = push_text(&mut b.text, &span.name);
            let (status, message) = match &span.status {
                SpanStatus::Unset => (wit::StatusCode::Unset, ""),
                SpanStatus::Ok => (wit::StatusCode::Ok, ""),
                SpanStatus::Error { description } => (wit::StatusCode::Error, description.as_str()),
            };
            let status_message = push_text(&mut b.text, message);
            b.spans.push(wit::Span {
                trace_id_high: u64::from_be_bytes(span.trace_id[..8].try_into().unwrap()),
                trace_id_low: u64::from_be_bytes(span.trace_id[8..].try_into().unwrap()),
                span_id: u64::from_be_bytes(span.span_id),
                parent_span_id: span.parent_span_id.map(u64::from_be_bytes),
                name,
                kind: match span.kind {
                    SpanKind::Server => wit::SpanKind::Server,
                    SpanKind::Client => wit::SpanKind::Client,
                },
                start_unix_nanos: span.start_unix_nanos,
                end_unix_nanos: span.end_unix_nanos,
                status,
                status_message,
                resource,
                attributes,
            });
        }
    }
}

pub struct Records {
    store: Store<()>,
    bindings: records_wit::SpanProcessor,
}

impl Records {
    pub fn load(path: &Path) -> Self {
        let engine = engine();
        let component = Component::from_file(&engine, path).unwrap();
        let mut store = store(&engine);
        let bindings =
            records_wit::SpanProcessor::instantiate(&mut store, &component, &Linker::new(&engine))
                .unwrap();
        bindings
            .bench_records_processor()
            .call_init(&mut store, "{}")
            .unwrap()
            .unwrap();
        Records { store, bindings }
    }

    pub fn process(&mut self, spans: Vec<Span>) -> Vec<Span> {
        use records_wit::bench::records::types as wit;
        fn attributes(attrs: &[Attribute]) -> Vec<wit::Attribute> {
            attrs
                .iter()
                .map(|a| wit::Attribute {
                    key: a.key.to_string(),
                    value: match &a.value {
                        AttributeValue::Str(s) => wit::Value::Str(s.to_string()),
                        AttributeValue::Int(i) => wit::Value::Int(*i),
                        AttributeValue::Float(f) => wit::Value::Float(*f),
                        AttributeValue::Bool(b) => wit::Value::Boolean(*b),
                    },
                })
                .collect()
        }
        let mut resources: Vec<Arc<Resource>> = Vec::new();
        let mut batch = wit::SpanBatch {
            resources: Vec::new(),
            spans: Vec::with_capacity(spans.len()),
        };
        for span in &spans {
            let resource = match resources
                .iter()
                .position(|r| Arc::ptr_eq(r, &span.resource))
            {
                Some(i) => i as u32,
                None => {
                    batch.resources.push(wit::Resource {
                        attributes: attributes(&span.resource.attributes),
                    });
                    resources.push(span.resource.clone());
                    (resources.len() - 1) as u32
                }
            };
            let (status, message) = match &span.status {
                SpanStatus::Unset => (wit::StatusCode::Unset, String::new()),
                SpanStatus::Ok => (wit::StatusCode::Ok, String::new()),
                SpanStatus::Error { description } => (wit::StatusCode::Error, description.clone()),
            };
            batch.spans.push(wit::Span {
                trace_id_high: u64::from_be_bytes(span.trace_id[..8].try_into().unwrap()),
                trace_id_low: u64::from_be_bytes(span.trace_id[8..].try_into().unwrap()),
                span_id: u64::from_be_bytes(span.span_id),
                parent_span_id: span.parent_span_id.map(u64::from_be_bytes),
                name: span.name.to_string(),
                kind: match span.kind {
                    SpanKind::Server => wit::SpanKind::Server,
                    SpanKind::Client => wit::SpanKind::Client,
                },
                start_unix_nanos: span.start_unix_nanos,
                end_unix_nanos: span.end_unix_nanos,
                status,
                status_message: message,
                resource,
                attributes: attributes(&span.attributes),
            });
        }
        drop(spans);
        let out = self
            .bindings
            .bench_records_processor()
            .call_process(&mut self.store, &batch)
            .unwrap()
            .unwrap();
        out.into_iter()
            .map(|s| {
                let mut trace_id = [0u8; 16];
                trace_id[..8].copy_from_slice(&s.trace_id_high.to_be_bytes());
                trace_id[8..].copy_from_slice(&s.trace_id_low.to_be_bytes());
                Span {
                    trace_id,
                    span_id: s.span_id.to_be_bytes(),
                    parent_span_id: s.parent_span_id.map(u64::to_be_bytes),
                    name: cut(&s.name).into(),
                    kind: match s.kind {
                        wit::SpanKind::Server => SpanKind::Server,
                        wit::SpanKind::Client => SpanKind::Client,
                    },
                    start_unix_nanos: s.start_unix_nanos,
                    end_unix_nanos: s.end_unix_nanos,
                    status: match s.status {
                        wit::StatusCode::Unset => SpanStatus::Unset,
                        wit::StatusCode::Ok => SpanStatus::Ok,
                        wit::StatusCode::Error => SpanStatus::Error {
                            description: cut(&s.status_message),
                        },
                    },
                    attributes: s
                        .attributes
                        .into_iter()
                        .filter(|a| !a.key.is_empty() && a.key.len() <= MAX_KEY_BYTES)
                        .take(MAX_ATTRIBUTES)
                        .map(|a| Attribute {
                            key: a.key.into(),
                            value: match a.value {
                                wit::Value::Str(v) if v.len() > MAX_VALUE_BYTES => {
                                    AttributeValue::from(cut(&v))
                                }
                                wit::Value::Str(v) => AttributeValue::from(v),
                                wit::Value::Int(i) => AttributeValue::Int(i),
                                wit::Value::Float(f) => AttributeValue::Float(f),
                                wit::Value::Boolean(b) => AttributeValue::Bool(b),
                            },
                        })
                        .collect(),
                    resource: resources
                        .get(s.resource as usize)
                        .cloned()
                        .unwrap_or_default(),
                }
            })
            .collect()
    }
}
