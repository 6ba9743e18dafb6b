//! Applies a plugin's edits to the batch, enforcing the host's limits: a plugin cannot make a
//! span or the agent unbounded (long strings are truncated, excess attributes and bad keys are
//! rejected, an edit outside the batch or an absurd number of edits fails the call).

use crate::span::{AttributeValue, Span, SpanStatus};

use super::bindings::types::{Edit, NewValue, StatusCode};

#[derive(Clone, Copy, Debug)]
pub struct EditLimits {
    pub max_value_bytes: usize,
    pub max_key_bytes: usize,
    pub max_attributes_per_span: usize,
}

impl EditLimits {
    /// Most edits accepted for a batch of `spans` spans.
    pub fn max_edits(&self, spans: usize) -> usize {
        spans
            .saturating_mul(self.max_attributes_per_span + 8)
            .saturating_add(64)
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub dropped: usize,
    pub truncated: u64,
    pub rejected: u64,
}

/// Applies `edits` to `spans`, marking drops in `dropped` (same length as `spans`, all false
/// on entry). On error nothing has been applied.
pub fn apply(
    spans: &mut [Span],
    edits: Vec<Edit>,
    limits: &EditLimits,
    dropped: &mut [bool],
) -> Result<Applied, String> {
    let max = limits.max_edits(spans.len());
    if edits.len() > max {
        return Err(format!(
            "returned {} edits for a batch of {} spans (limit {max})",
            edits.len(),
            spans.len()
        ));
    }
    if let Some(bad) = edits
        .iter()
        .map(target)
        .find(|i| *i as usize >= spans.len())
    {
        return Err(format!(
            "edit refers to span {bad} of a batch of {} spans",
            spans.len()
        ));
    }
    let mut applied = Applied::default();
    for edit in edits {
        let index = target(&edit) as usize;
        let span = &mut spans[index];
        match edit {
            Edit::Drop(_) => {
                if !dropped[index] {
                    dropped[index] = true;
                    applied.dropped += 1;
                }
            }
            Edit::Rename(r) => span.name = truncate(r.name, limits, &mut applied),
            Edit::SetAttribute(s) => {
                if s.key.is_empty() || s.key.len() > limits.max_key_bytes {
                    applied.rejected += 1;
                    continue;
                }
                let value = match s.value {
                    NewValue::Str(v) => AttributeValue::Str(truncate(v, limits, &mut applied)),
                    NewValue::Int(i) => AttributeValue::Int(i),
                    NewValue::Float(f) => AttributeValue::Float(f),
                    NewValue::Boolean(b) => AttributeValue::Bool(b),
                };
                let exists = span.attributes.iter().any(|a| a.key == s.key);
                if !exists && span.attributes.len() >= limits.max_attributes_per_span {
                    applied.rejected += 1;
                    continue;
                }
                span.set_attribute(&s.key, value);
            }
            Edit::RemoveAttribute(r) => {
                span.remove_attribute(&r.key);
            }
            Edit::SetStatus(s) => {
                span.status = match s.code {
                    StatusCode::Unset => SpanStatus::Unset,
                    StatusCode::Ok => SpanStatus::Ok,
                    StatusCode::Error => SpanStatus::Error {
                        description: truncate(s.message, limits, &mut applied),
                    },
                }
            }
        }
    }
    Ok(applied)
}

fn target(edit: &Edit) -> u32 {
    match edit {
        Edit::Drop(i) => *i,
        Edit::Rename(r) => r.span,
        Edit::SetAttribute(s) => s.span,
        Edit::RemoveAttribute(r) => r.span,
        Edit::SetStatus(s) => s.span,
    }
}

/// Cuts `s` to the value limit at a character boundary.
fn truncate(mut s: String, limits: &EditLimits, applied: &mut Applied) -> String {
    if s.len() > limits.max_value_bytes {
        let mut end = limits.max_value_bytes;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.shrink_to_fit();
        applied.truncated += 1;
    }
    s
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::plugins::bindings::types::{Rename, SetAttribute, SetStatus};
    use crate::span::{Resource, SpanKind};

    const LIMITS: EditLimits = EditLimits {
        max_value_bytes: 8,
        max_key_bytes: 4,
        max_attributes_per_span: 2,
    };

    fn spans(n: usize) -> Vec<Span> {
        (0..n)
            .map(|i| Span {
                trace_id: [0; 16],
                span_id: [i as u8; 8],
                parent_span_id: None,
                name: "GET".into(),
                kind: SpanKind::Server,
                start_unix_nanos: 0,
                end_unix_nanos: 1,
                status: SpanStatus::Unset,
                attributes: vec![],
                resource: Arc::new(Resource::default()),
            })
            .collect()
    }

    fn set(span: u32, key: &str, value: &str) -> Edit {
        Edit::SetAttribute(SetAttribute {
            span,
            key: key.into(),
            value: NewValue::Str(value.into()),
        })
    }

    #[test]
    fn applies_in_order_and_truncates_at_char_boundaries() {
        let mut s = spans(2);
        let mut dropped = vec![false; 2];
        let edits = vec![
            set(0, "a", "1"),
            set(0, "a", "ééééé"),
            Edit::Rename(Rename {
                span: 1,
                name: "0123456789".into(),
            }),
            Edit::SetStatus(SetStatus {
                span: 1,
                code: StatusCode::Error,
                message: "bad".into(),
            }),
            Edit::Drop(1),
            Edit::Drop(1),
        ];
        let applied = apply(&mut s, edits, &LIMITS, &mut dropped).unwrap();
        assert_eq!(
            applied,
            Applied {
                dropped: 1,
                truncated: 2,
                rejected: 0
            }
        );
        assert_eq!(s[0].attribute("a"), Some(&AttributeValue::from("éééé")));
        assert_eq!(s[1].name, "01234567");
        assert_eq!(
            s[1].status,
            SpanStatus::Error {
                description: "bad".into()
            }
        );
        assert_eq!(dropped, [false, true]);
    }

    #[test]
    fn rejects_long_keys_and_attributes_beyond_the_cap() {
        let mut s = spans(1);
        let edits = vec![
            set(0, "toolong", "x"),
            set(0, "", "x"),
            set(0, "a", "1"),
            set(0, "b", "2"),
            set(0, "c", "3"),
            set(0, "a", "4"),
        ];
        let applied = apply(&mut s, edits, &LIMITS, &mut [false]).unwrap();
        assert_eq!(applied.rejected, 3);
        assert_eq!(s[0].attributes.len(), 2);
        assert_eq!(s[0].attribute("a"), Some(&AttributeValue::from("4")));
    }

    #[test]
    fn an_edit_outside_the_batch_or_too_many_edits_fail_without_applying_anything() {
        let mut s = spans(1);
        let err = apply(
            &mut s,
            vec![set(0, "a", "1"), Edit::Drop(3)],
            &LIMITS,
            &mut [false],
        )
        .unwrap_err();
        assert!(err.contains("span 3 of a batch of 1"), "{err}");
        assert!(s[0].attributes.is_empty());
        let many = (0..1000).map(|_| set(0, "a", "1")).collect();
        let err = apply(&mut s, many, &LIMITS, &mut [false]).unwrap_err();
        assert!(err.contains("1000 edits"), "{err}");
    }
}
