//! Route templating: `/users/123/orders/9f86d081884c7d65` -> `/users/{id}/orders/{id}` for
//! numeric, UUID and hex segments, setting `http.route` and the span name `{method} {route}`.
//! A route the capture already knows (Go 1.22+ mux patterns) is kept.

use http_autoinstrument_plugin::bytes::position_of_any;
use http_autoinstrument_plugin::{export_plugin, parse_settings, Batch, Edits, Plugin};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    placeholder: String,
    /// Hex segments shorter than this stay (so words like `cafe` or `added` survive).
    min_hex_len: usize,
    /// Replace an `http.route` that is already set (normally it comes from the Go mux).
    overwrite_route: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            placeholder: "{id}".into(),
            min_hex_len: 8,
            overwrite_route: false,
        }
    }
}

pub struct RouteTemplate {
    settings: Settings,
    route: String,
    name: String,
}

impl RouteTemplate {
    /// Writes the template of `path` into `self.route`; returns whether any segment changed.
    fn template(&mut self, path: &str) -> bool {
        self.route.clear();
        // The SDK's word-at-a-time search rather than `split` or a byte loop: a char pattern goes
        // through `memchr`, whose setup costs more than the few bytes of a path segment it
        // searches, and a byte loop pays
        // the time-limit check per byte.
        let end = position_of_any(path.as_bytes(), [b'?', b'#']).unwrap_or(path.len());
        let path = &path[..end];
        // Kept segments are copied in runs, up to the next identifier: each copy in Wasm is a
        // call out of the sandbox (`memory.copy`), which costs more than a segment's bytes.
        let mut copied = 0;
        let mut start = 0;
        loop {
            let rest = &path[start..];
            let len = position_of_any(rest.as_bytes(), [b'/']).unwrap_or(rest.len());
            if is_identifier(&rest[..len], self.settings.min_hex_len) {
                self.route.push_str(&path[copied..start]);
                self.route.push_str(&self.settings.placeholder);
                copied = start + len;
            }
            if len == rest.len() {
                self.route.push_str(&path[copied..]);
                return copied > 0;
            }
            start += len + 1;
        }
    }
}

/// Numeric, UUID (8-4-4-4-12 hex) or hex with at least one digit and `min_hex_len` characters.
pub fn is_identifier(segment: &str, min_hex_len: usize) -> bool {
    let b = segment.as_bytes();
    if b.is_empty() {
        return false;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if b.len() == 36 {
        let uuid = b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
        if uuid {
            return true;
        }
    }
    b.len() >= min_hex_len
        && b.iter().all(u8::is_ascii_hexdigit)
        && b.iter().any(u8::is_ascii_digit)
}

impl Plugin for RouteTemplate {
    fn init(settings: &str) -> Result<Self, String> {
        let settings: Settings = parse_settings(settings)?;
        if settings.placeholder.is_empty() || settings.placeholder.contains('/') {
            return Err(format!(
                "route-template: placeholder {:?} must be non-empty and contain no '/'",
                settings.placeholder
            ));
        }
        Ok(RouteTemplate {
            settings,
            route: String::new(),
            name: String::new(),
        })
    }

    fn process(&mut self, batch: &Batch, edits: &mut Edits) -> Result<(), String> {
        for span in batch.spans() {
            let [route, path, method] = span
                .attributes_of(["http.route", "url.path", "http.request.method"])
                .map(|value| value.and_then(|v| v.as_str()));
            let known_route = route.filter(|r| !r.is_empty());
            let route = match known_route {
                Some(route) if !self.settings.overwrite_route => route,
                _ => {
                    let Some(path) = path else {
                        continue;
                    };
                    let changed = self.template(path);
                    if changed || known_route.is_none() || known_route != Some(self.route.as_str())
                    {
                        edits.set_attribute(&span, "http.route", self.route.as_str());
                    }
                    self.route.as_str()
                }
            };
            self.name.clear();
            if let Some(method) = method {
                self.name.push_str(method);
                self.name.push(' ');
            }
            self.name.push_str(route);
            if span.name() != self.name {
                edits.rename(&span, self.name.as_str());
            }
        }
        Ok(())
    }
}

export_plugin!(RouteTemplate);

#[cfg(test)]
mod tests {
    use super::*;
    use http_autoinstrument_plugin::testing::{run, TestSpan};

    fn get(path: &str) -> TestSpan {
        TestSpan::new("GET")
            .attr("http.request.method", "GET")
            .attr("url.path", path)
    }

    #[test]
    fn numeric_uuid_and_hex_segments_become_placeholders() {
        let mut p = RouteTemplate::init("{}").unwrap();
        let out = run(
            &mut p,
            vec![
                get("/users/123"),
                get("/orders/550e8400-e29b-41d4-a716-446655440000/items/9f86d081884c7d65?x=1"),
                get("/blog/cafe/added/deadbeef"),
            ],
        )
        .unwrap();
        assert_eq!(out[0].str_attr("http.route"), Some("/users/{id}"));
        assert_eq!(out[0].name, "GET /users/{id}");
        assert_eq!(
            out[1].str_attr("http.route"),
            Some("/orders/{id}/items/{id}")
        );
        assert_eq!(
            out[2].str_attr("http.route"),
            Some("/blog/cafe/added/deadbeef"),
            "no digit: a word"
        );
    }

    #[test]
    fn a_known_route_is_kept_and_names_the_span() {
        let mut p = RouteTemplate::init("{}").unwrap();
        let span = get("/users/123").attr("http.route", "/users/{userID}");
        let out = run(&mut p, vec![span.clone()]).unwrap();
        assert_eq!(out[0].str_attr("http.route"), Some("/users/{userID}"));
        assert_eq!(out[0].name, "GET /users/{userID}");
        let mut p =
            RouteTemplate::init(r#"{"overwrite_route": true, "placeholder": ":id"}"#).unwrap();
        let out = run(&mut p, vec![span]).unwrap();
        assert_eq!(out[0].str_attr("http.route"), Some("/users/:id"));
    }

    #[test]
    fn without_a_method_the_name_is_the_route_and_without_a_path_nothing_changes() {
        let mut p = RouteTemplate::init("{}").unwrap();
        let out = run(
            &mut p,
            vec![
                TestSpan::new("x").attr("url.path", "/a/1"),
                TestSpan::new("y"),
            ],
        )
        .unwrap();
        assert_eq!(out[0].name, "/a/{id}");
        assert_eq!(out[1], TestSpan::new("y"));
    }

    #[test]
    fn every_segment_is_kept_or_replaced_empty_ones_and_a_trailing_slash_included() {
        let mut p = RouteTemplate::init("{}").unwrap();
        for (path, route, changed) in [
            ("", "", false),
            ("/", "/", false),
            ("//", "//", false),
            ("/users/", "/users/", false),
            ("/users/42/", "/users/{id}/", true),
            ("42", "{id}", true),
            ("/a//7", "/a//{id}", true),
            ("/é/12?x=/3", "/é/{id}", true),
            ("/x#/9", "/x", false),
            ("?/9", "", false),
        ] {
            assert_eq!(p.template(path), changed, "{path:?}");
            assert_eq!(p.route, route, "{path:?}");
        }
    }

    #[test]
    fn bad_placeholder_is_refused() {
        assert!(RouteTemplate::init(r#"{"placeholder": "a/b"}"#).is_err());
    }
}
