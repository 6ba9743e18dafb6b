//! Redacts secrets and personal data in every string attribute and the span name: values of
//! sensitive query parameters, bearer tokens, e-mail addresses and card numbers (Luhn-checked).

mod scan;

use http_autoinstrument_plugin::{export_plugin, parse_settings, Batch, Edits, Plugin};
use serde::Deserialize;

pub use scan::Redactor;

/// Query parameters whose values are always redacted unless `use_default_params = false`.
pub const DEFAULT_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth",
    "authorization",
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "signature",
    "sig",
    "session",
    "sessionid",
    "jwt",
    "code",
];

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    /// More query parameter names (case-insensitive).
    query_params: Vec<String>,
    use_default_params: bool,
    bearer_tokens: bool,
    emails: bool,
    card_numbers: bool,
    replacement: String,
    /// Attribute keys that are never rewritten.
    skip_attributes: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            query_params: Vec::new(),
            use_default_params: true,
            bearer_tokens: true,
            emails: true,
            card_numbers: true,
            replacement: "REDACTED".into(),
            skip_attributes: Vec::new(),
        }
    }
}

pub struct Redact {
    redactor: Redactor,
    skip_attributes: Vec<String>,
}

impl Plugin for Redact {
    fn init(settings: &str) -> Result<Self, String> {
        let s: Settings = parse_settings(settings)?;
        let mut params = s.query_params;
        if s.use_default_params {
            params.extend(DEFAULT_PARAMS.iter().map(|p| p.to_string()));
        }
        if let Some(bad) = params
            .iter()
            .find(|p| p.is_empty() || p.contains(['=', '&']))
        {
            return Err(format!(
                "redact: query parameter name {bad:?} is empty or contains '=' or '&'"
            ));
        }
        Ok(Redact {
            redactor: Redactor {
                params,
                bearer_tokens: s.bearer_tokens,
                emails: s.emails,
                card_numbers: s.card_numbers,
                replacement: s.replacement,
            },
            skip_attributes: s.skip_attributes,
        })
    }

    fn process(&mut self, batch: &Batch, edits: &mut Edits) -> Result<(), String> {
        for span in batch.spans() {
            if let Some(name) = self.redactor.redact(span.name()) {
                edits.rename(&span, name);
            }
            for (key, text) in span.text_attributes() {
                if self.skip_attributes.iter().any(|k| k == key) {
                    continue;
                }
                if let Some(clean) = self.redactor.redact(text) {
                    edits.set_attribute(&span, key, clean);
                }
            }
        }
        Ok(())
    }
}

export_plugin!(Redact);

#[cfg(test)]
mod tests {
    use super::*;
    use http_autoinstrument_plugin::testing::{run, TestSpan};

    #[test]
    fn redacts_every_kind_of_secret_in_any_attribute_and_the_name() {
        let mut r = Redact::init("{}").unwrap();
        let span = TestSpan::new("GET /reset?token=abc")
            .attr("url.query", "user=bob&token=abc123&Password=hunter2")
            .attr(
                "http.request.header.authorization",
                "Bearer eyJhbGciOi.x-y_z",
            )
            .attr("app.note", "mail alice.smith+x@example.co.uk now")
            .attr("app.card", "card 4111 1111 1111 1111 end")
            .attr("url.path", "/users/42")
            .attr("http.response.status_code", 200i64);
        let out = run(&mut r, vec![span]).unwrap();
        let s = &out[0];
        assert_eq!(s.name, "GET /reset?token=REDACTED");
        assert_eq!(
            s.str_attr("url.query"),
            Some("user=bob&token=REDACTED&Password=REDACTED")
        );
        assert_eq!(
            s.str_attr("http.request.header.authorization"),
            Some("Bearer REDACTED")
        );
        assert_eq!(s.str_attr("app.note"), Some("mail REDACTED now"));
        assert_eq!(s.str_attr("app.card"), Some("card REDACTED end"));
        assert_eq!(s.str_attr("url.path"), Some("/users/42"));
        assert_eq!(s.int_attr("http.response.status_code"), Some(200));
    }

    #[test]
    fn settings_add_params_change_replacement_and_skip_attributes() {
        let mut r = Redact::init(
            r#"{"query_params": ["ssn"], "replacement": "***", "skip_attributes": ["app.raw"], "emails": false}"#,
        )
        .unwrap();
        let span = TestSpan::new("GET")
            .attr("url.query", "ssn=123-45&api_key=k")
            .attr("app.raw", "token=keep")
            .attr("app.mail", "a@b.io");
        let out = run(&mut r, vec![span]).unwrap();
        assert_eq!(out[0].str_attr("url.query"), Some("ssn=***&api_key=***"));
        assert_eq!(out[0].str_attr("app.raw"), Some("token=keep"));
        assert_eq!(out[0].str_attr("app.mail"), Some("a@b.io"));
    }

    #[test]
    fn clean_spans_get_no_edits() {
        let mut r = Redact::init("{}").unwrap();
        let batch =
            http_autoinstrument_plugin::Batch::from_raw(http_autoinstrument_plugin::testing::pack(
                &[TestSpan::new("GET /users/{id}").attr("url.query", "page=2&sort=name")],
            ));
        let mut edits = Edits::new();
        r.process(&batch, &mut edits).unwrap();
        assert!(edits.is_empty());
    }

    #[test]
    fn bad_param_name_is_refused() {
        assert!(Redact::init(r#"{"query_params": ["a=b"]}"#)
            .err()
            .unwrap()
            .contains("a=b"));
    }
}
