//! Drops health and readiness checks and other configured routes.

use http_autoinstrument_plugin::bytes::position_of_any;
use http_autoinstrument_plugin::{export_plugin, parse_settings, Batch, Edits, Plugin, SpanRef};
use serde::Deserialize;

/// Paths dropped unless `use_default_paths = false`.
const DEFAULT_PATHS: &[&str] = &[
    "/health", "/healthz", "/ready", "/readyz", "/live", "/livez", "/ping",
];

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    /// Exact paths or routes (matched against `url.path` and `http.route`) to drop, in
    /// addition to the defaults.
    paths: Vec<String>,
    /// Path prefixes to drop, e.g. `/debug/`.
    prefixes: Vec<String>,
    use_default_paths: bool,
    /// Keep a matching span anyway when it failed (5xx or error status): a failing health
    /// check is worth seeing.
    keep_errors: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            paths: Vec::new(),
            prefixes: Vec::new(),
            use_default_paths: true,
            keep_errors: true,
        }
    }
}

pub struct Filter {
    paths: Vec<String>,
    prefixes: Vec<String>,
    keep_errors: bool,
}

impl Filter {
    fn matches(&self, path: &str) -> bool {
        // Ignore a query string or trailing slash: `/healthz/` and `/healthz?full=1` are checks too.
        let path = &path[..position_of_any(path.as_bytes(), [b'?', b'#']).unwrap_or(path.len())];
        let trimmed = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        self.paths.iter().any(|p| p == trimmed)
            || self.prefixes.iter().any(|p| path.starts_with(p.as_str()))
    }

    fn failed(span: &SpanRef<'_>) -> bool {
        span.status() == http_autoinstrument_plugin::StatusCode::Error
            || span
                .int_attribute("http.response.status_code")
                .is_some_and(|c| c >= 500)
    }
}

impl Plugin for Filter {
    fn init(settings: &str) -> Result<Self, String> {
        let s: Settings = parse_settings(settings)?;
        let mut paths = s.paths;
        if s.use_default_paths {
            paths.extend(DEFAULT_PATHS.iter().map(|p| p.to_string()));
        }
        if let Some(bad) = paths
            .iter()
            .chain(&s.prefixes)
            .find(|p| !p.starts_with('/'))
        {
            return Err(format!("filter: path {bad:?} must start with '/'"));
        }
        Ok(Filter {
            paths,
            prefixes: s.prefixes,
            keep_errors: s.keep_errors,
        })
    }

    fn process(&mut self, batch: &Batch, edits: &mut Edits) -> Result<(), String> {
        for span in batch.spans() {
            let matched = span
                .attributes_of(["url.path", "http.route"])
                .iter()
                .any(|value| {
                    value
                        .and_then(|v| v.as_str())
                        .is_some_and(|p| self.matches(p))
                });
            if matched && !(self.keep_errors && Self::failed(&span)) {
                edits.drop(&span);
            }
        }
        Ok(())
    }
}

export_plugin!(Filter);

#[cfg(test)]
mod tests {
    use super::*;
    use http_autoinstrument_plugin::testing::{run, TestSpan};

    fn get(path: &str) -> TestSpan {
        TestSpan::new("GET")
            .attr("url.path", path)
            .attr("http.response.status_code", 200i64)
    }

    #[test]
    fn drops_default_health_checks_and_keeps_the_rest() {
        let mut f = Filter::init("{}").unwrap();
        let out = run(
            &mut f,
            vec![
                get("/healthz"),
                get("/readyz/"),
                get("/users/1"),
                get("/ping?x=1"),
            ],
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].str_attr("url.path"), Some("/users/1"));
    }

    #[test]
    fn configured_paths_and_prefixes_are_dropped() {
        let mut f = Filter::init(r#"{"paths": ["/metrics"], "prefixes": ["/debug/"]}"#).unwrap();
        let out = run(
            &mut f,
            vec![
                get("/metrics"),
                get("/debug/pprof"),
                get("/debugger"),
                get("/healthz"),
            ],
        )
        .unwrap();
        let paths: Vec<_> = out
            .iter()
            .map(|s| s.str_attr("url.path").unwrap())
            .collect();
        assert_eq!(paths, ["/debugger"]);
    }

    #[test]
    fn failing_health_check_is_kept_unless_configured_otherwise() {
        let failing = TestSpan::new("GET")
            .attr("url.path", "/healthz")
            .attr("http.response.status_code", 503i64);
        let mut f = Filter::init("{}").unwrap();
        assert_eq!(run(&mut f, vec![failing.clone()]).unwrap().len(), 1);
        let mut f = Filter::init(r#"{"keep_errors": false}"#).unwrap();
        assert_eq!(run(&mut f, vec![failing]).unwrap().len(), 0);
    }

    #[test]
    fn routes_match_too() {
        let mut f = Filter::init(r#"{"paths": ["/users/{id}"]}"#).unwrap();
        let templated = get("/users/7").attr("http.route", "/users/{id}");
        assert_eq!(
            run(&mut f, vec![templated, get("/users/7")]).unwrap().len(),
            1
        );
    }

    #[test]
    fn defaults_can_be_turned_off() {
        let mut f = Filter::init(r#"{"use_default_paths": false}"#).unwrap();
        assert_eq!(run(&mut f, vec![get("/healthz")]).unwrap().len(), 1);
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let err = Filter::init(r#"{"paths": ["healthz"]}"#).err().unwrap();
        assert!(err.contains("must start with '/'"), "{err}");
        let err = Filter::init(r#"{"pathz": []}"#).err().unwrap();
        assert!(err.contains("unknown field"), "{err}");
    }
}
