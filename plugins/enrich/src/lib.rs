//! Enrichment: adds static attributes and attributes read from environment variables to every
//! span. Environment variables are only visible to the plugin when its settings file grants
//! them (`[grants] env = ["POD_NAME"]`); the agent passes nothing else.

use std::collections::BTreeMap;

use http_autoinstrument_plugin::{export_plugin, parse_settings, Batch, Edits, Plugin};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    /// Attribute key -> value.
    attributes: BTreeMap<String, String>,
    /// Attribute key -> name of an environment variable.
    from_env: BTreeMap<String, String>,
    /// Fail the load when a `from_env` variable is not set (otherwise it is skipped).
    require_env: bool,
    /// Replace attributes the span already has (otherwise they are kept).
    overwrite: bool,
}

pub struct Enrich {
    attributes: Vec<(String, String)>,
    overwrite: bool,
}

impl Enrich {
    /// Builds the plugin with `lookup` standing in for the environment.
    fn from_settings(
        settings: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let s: Settings = parse_settings(settings)?;
        let mut attributes: Vec<(String, String)> = s.attributes.into_iter().collect();
        for (key, var) in s.from_env {
            match lookup(&var) {
                Some(value) => attributes.push((key, value)),
                None if s.require_env => {
                    return Err(format!(
                        "enrich: environment variable {var} (for {key}) is not set or not granted; \
                         grant it with `[grants] env = [\"{var}\"]` in the plugin's settings file"
                    ))
                }
                None => {}
            }
        }
        if let Some((key, _)) = attributes.iter().find(|(k, _)| k.is_empty()) {
            return Err(format!("enrich: empty attribute key {key:?}"));
        }
        Ok(Enrich {
            attributes,
            overwrite: s.overwrite,
        })
    }
}

impl Plugin for Enrich {
    fn init(settings: &str) -> Result<Self, String> {
        Enrich::from_settings(settings, |var| std::env::var(var).ok())
    }

    fn process(&mut self, batch: &Batch, edits: &mut Edits) -> Result<(), String> {
        for span in batch.spans() {
            for (key, value) in &self.attributes {
                if self.overwrite || span.attribute(key).is_none() {
                    edits.set_attribute(&span, key.as_str(), value.as_str());
                }
            }
        }
        Ok(())
    }
}

export_plugin!(Enrich);

#[cfg(test)]
mod tests {
    use super::*;
    use http_autoinstrument_plugin::testing::{run, TestSpan};

    fn env(var: &str) -> Option<String> {
        (var == "POD_NAME").then(|| "web-7f9c".to_string())
    }

    #[test]
    fn adds_static_and_environment_attributes_without_overwriting() {
        let mut p = Enrich::from_settings(
            r#"{"attributes": {"deployment.environment": "prod", "team": "web"},
                "from_env": {"k8s.pod.name": "POD_NAME", "k8s.node.name": "NODE_NAME"}}"#,
            env,
        )
        .unwrap();
        let out = run(&mut p, vec![TestSpan::new("GET").attr("team", "payments")]).unwrap();
        assert_eq!(out[0].str_attr("deployment.environment"), Some("prod"));
        assert_eq!(out[0].str_attr("k8s.pod.name"), Some("web-7f9c"));
        assert_eq!(out[0].str_attr("team"), Some("payments"));
        assert_eq!(
            out[0].get("k8s.node.name"),
            None,
            "unset variable is skipped"
        );
    }

    #[test]
    fn overwrite_replaces_and_require_env_names_the_missing_variable() {
        let mut p =
            Enrich::from_settings(r#"{"attributes": {"team": "web"}, "overwrite": true}"#, env)
                .unwrap();
        let out = run(&mut p, vec![TestSpan::new("GET").attr("team", "payments")]).unwrap();
        assert_eq!(out[0].str_attr("team"), Some("web"));
        let err = Enrich::from_settings(
            r#"{"from_env": {"k": "NODE_NAME"}, "require_env": true}"#,
            env,
        )
        .err()
        .unwrap();
        assert!(
            err.contains("NODE_NAME") && err.contains("[grants]"),
            "{err}"
        );
    }
}
