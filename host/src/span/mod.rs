//! Spans: the agent's own model (`model`) and how a decoded request becomes one.
mod model;

pub use model::{Attribute, AttributeValue, Resource, Span, SpanKind, SpanStatus};
