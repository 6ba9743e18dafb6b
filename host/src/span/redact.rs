//! What of a URL stays out of spans by default, as the OTel HTTP semantic conventions ask: the
//! values of query parameters that carry credentials (signed URLs) become `REDACTED`, and a URL's
//! user information never appears (the probes do not read it). Users name more parameters in
//! `traces.redact_query_parameters`; the redact plugin covers the rest (tokens in paths,
//! headers, e-mail addresses).
use std::borrow::Cow;

/// The query parameters the semantic conventions name as sensitive.
pub const SENSITIVE_QUERY_PARAMETERS: [&str; 4] =
    ["AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"];

const REDACTED: &str = "REDACTED";

/// The query parameters whose values are redacted.
#[derive(Clone, Debug)]
pub struct QueryRedaction {
    names: Vec<String>,
}

impl Default for QueryRedaction {
    fn default() -> Self {
        QueryRedaction::with_extra(&[])
    }
}

impl QueryRedaction {
    /// The conventions' parameters and `extra` (compared as written, like the conventions').
    pub fn with_extra(extra: &[String]) -> Self {
        let mut names: Vec<String> = SENSITIVE_QUERY_PARAMETERS.map(str::to_owned).into();
        names.extend(extra.iter().filter(|n| !n.is_empty()).cloned());
        QueryRedaction { names }
    }

    /// `query` (raw, `a=1&b=2`) with the values of the sensitive parameters replaced; borrowed
    /// when none is there.
    pub fn apply<'a>(&self, query: &'a str) -> Cow<'a, str> {
        let sensitive = |pair: &str| {
            let name = pair.split('=').next().unwrap_or(pair);
            self.names.iter().any(|n| n == name)
        };
        if !query
            .split('&')
            .any(|pair| pair.contains('=') && sensitive(pair))
        {
            return Cow::Borrowed(query);
        }
        let mut out = String::with_capacity(query.len());
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, _)) if sensitive(pair) => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
        Cow::Owned(out)
    }
}

/// A decoded URL path escaped again for `url.full` (RFC 3986 path characters kept).
pub fn escape_path(path: &str) -> Cow<'_, str> {
    let keep = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
    if path.bytes().all(keep) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len() + 8);
    for b in path.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_values_are_redacted_and_the_rest_kept() {
        let r = QueryRedaction::default();
        assert!(matches!(r.apply("page=2&q=x"), Cow::Borrowed("page=2&q=x")));
        assert_eq!(
            r.apply("X-Goog-Signature=abc&page=2&sig=zz&Signature="),
            "X-Goog-Signature=REDACTED&page=2&sig=REDACTED&Signature=REDACTED"
        );
        assert_eq!(
            r.apply("AWSAccessKeyId=AKIA&Expires=1"),
            "AWSAccessKeyId=REDACTED&Expires=1"
        );
        // Names are compared as written; a bare name has no value to hide.
        assert_eq!(r.apply("signature=x&sig"), "signature=x&sig");
        let more = QueryRedaction::with_extra(&["token".into()]);
        assert_eq!(more.apply("token=t0k&a=1"), "token=REDACTED&a=1");
    }

    #[test]
    fn paths_are_escaped_for_a_full_url() {
        assert!(matches!(escape_path("/a/b-c_d~e"), Cow::Borrowed(_)));
        assert_eq!(escape_path("/users/café 1"), "/users/caf%C3%A9%201");
    }
}
