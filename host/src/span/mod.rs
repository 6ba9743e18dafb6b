//! Spans: the agent's own model, the clock that dates them, the resource of a traced process, and
//! how a decoded request becomes a span.
mod build;
mod clock;
mod model;
mod redact;
mod resource;

pub use build::{client_span, route_of_pattern, server_span, TRUNCATED_ATTRIBUTE, TRUNCATION_MARK};
pub use clock::{WallClock, WallClockSource};
pub(crate) use model::push_attribute;
pub use model::{Attribute, AttributeValue, Resource, Span, SpanKind, SpanStatus};
pub use redact::{QueryRedaction, SENSITIVE_QUERY_PARAMETERS};
pub use resource::{
    host_name, parse_environ, parse_resource_attributes, process_resource, read_process_resource,
    HostFacts, ProcessFacts, AGENT_NAME, AGENT_VERSION,
};
