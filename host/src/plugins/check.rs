//! What a component is: does it implement the span-processor world of this agent's WIT version,
//! what does it import, and what would each import be granted.

use std::fmt;

use anyhow::{bail, Result};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The export every plugin must have.
pub const WORLD_EXPORT: &str = "http-autoinstrument:plugin/processor@0.2.0";
const PACKAGE_PREFIX: &str = "http-autoinstrument:plugin/";

/// What the agent gives a plugin for one import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportGrant {
    pub import: String,
    pub grant: &'static str,
}

#[derive(Clone, Debug)]
pub struct ComponentReport {
    pub exports: Vec<String>,
    pub imports: Vec<ImportGrant>,
}

impl ComponentReport {
    /// Whether the plugin imports any WASI interface (Python and JavaScript plugins do).
    pub fn uses_wasi(&self) -> bool {
        self.imports.iter().any(|i| i.import.starts_with("wasi:"))
    }
}

impl fmt::Display for ComponentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "exports:")?;
        for e in &self.exports {
            writeln!(f, "  {e}")?;
        }
        writeln!(f, "imports (and what the agent grants):")?;
        if self.imports.is_empty() {
            writeln!(f, "  none")?;
        }
        for i in &self.imports {
            writeln!(f, "  {:<44} {}", i.import, i.grant)?;
        }
        Ok(())
    }
}

/// Checks that `component` is a span-processor plugin for this agent and lists its imports.
pub fn check_component(engine: &Engine, component: &Component) -> Result<ComponentReport> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    if !exports.iter().any(|e| e == WORLD_EXPORT) {
        if let Some(other) = exports.iter().find(|e| e.starts_with(PACKAGE_PREFIX)) {
            bail!(
                "built for {other}, but this agent runs {WORLD_EXPORT}: rebuild the plugin \
                 against this agent's wit/ (or the matching http-autoinstrument-plugin SDK)"
            );
        }
        bail!(
            "not a span-processor plugin: it does not export {WORLD_EXPORT} (it exports: {}); \
             build it for the `span-processor` world in wit/plugin.wit",
            if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.join(", ")
            }
        );
    }
    let mut imports = Vec::new();
    for (name, _) in ty.imports(engine) {
        let grant = grant_for(name)
            .ok_or_else(|| anyhow::anyhow!("imports {name}, which the agent does not provide (only the plugin `host` interface and WASI 0.2 are available)"))?;
        imports.push(ImportGrant {
            import: name.to_string(),
            grant,
        });
    }
    Ok(ComponentReport { exports, imports })
}

fn grant_for(import: &str) -> Option<&'static str> {
    let interface = import.split('@').next().unwrap_or(import);
    let version = import.split('@').nth(1);
    if let Some(rest) = interface.strip_prefix(PACKAGE_PREFIX) {
        let ours = WORLD_EXPORT.split('@').nth(1);
        if version != ours {
            return None;
        }
        return match rest {
            "host" => Some("granted: logging (rate-limited), wall clock, random numbers"),
            "types" => Some("types only"),
            _ => None,
        };
    }
    let grant = match interface {
        "wasi:cli/environment" => {
            "environment: only variables listed in [grants] env; no arguments"
        }
        "wasi:cli/exit" => "exit: ends the call as a failure",
        "wasi:cli/stdin" => "stdin: empty",
        "wasi:cli/stdout" | "wasi:cli/stderr" => "output: discarded unless [grants] stdio = true",
        "wasi:filesystem/types" | "wasi:filesystem/preopens" => {
            "filesystem: no directories unless listed in [grants] read-dirs (read-only)"
        }
        "wasi:random/random" | "wasi:random/insecure" | "wasi:random/insecure-seed" => {
            "granted: random numbers"
        }
        "wasi:clocks/wall-clock" | "wasi:clocks/monotonic-clock" => "granted: clocks",
        "wasi:io/error" | "wasi:io/streams" | "wasi:io/poll" => "granted: stream plumbing",
        i if i.starts_with("wasi:cli/terminal-") => "terminal: none",
        i if i.starts_with("wasi:sockets/") => "network: denied (no grant exists)",
        _ => return None,
    };
    Some(grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_explicit_for_known_imports_and_absent_for_unknown_ones() {
        assert!(grant_for("http-autoinstrument:plugin/host@0.2.0")
            .unwrap()
            .contains("logging"));
        assert_eq!(grant_for("http-autoinstrument:plugin/host@0.1.0"), None);
        assert!(grant_for("wasi:sockets/tcp@0.2.6")
            .unwrap()
            .contains("denied"));
        assert!(grant_for("wasi:cli/environment@0.2.0")
            .unwrap()
            .contains("[grants] env"));
        assert_eq!(grant_for("wasi:http/outgoing-handler@0.2.0"), None);
        assert_eq!(grant_for("acme:db/query"), None);
    }

    #[test]
    fn wrong_world_and_core_modules_are_refused_with_the_fix() {
        let engine = Engine::default();
        let empty = Component::new(&engine, "(component)").unwrap();
        let err = check_component(&engine, &empty).unwrap_err().to_string();
        assert!(
            err.contains("does not export") && err.contains("span-processor"),
            "{err}"
        );
        let other_version = Component::new(
            &engine,
            r#"(component (instance $i) (export "http-autoinstrument:plugin/processor@9.0.0" (instance $i)))"#,
        )
        .unwrap();
        let err = check_component(&engine, &other_version)
            .unwrap_err()
            .to_string();
        assert!(err.contains("@9.0.0") && err.contains("rebuild"), "{err}");
    }
}
