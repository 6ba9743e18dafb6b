//! Reading the YAML configuration file, with errors that name the file, line, column and key.
use std::path::Path;

use super::schema::AgentConfig;
use super::ConfigError;

pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        file: path.to_owned(),
        message: e.to_string(),
    })?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<AgentConfig, ConfigError> {
    // An empty file (or one with only comments) is all defaults, not an error.
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(AgentConfig::default());
    }
    let deserializer = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let location = inner.location();
        let (line, column) = (
            location.as_ref().map(|l| l.line()),
            location.as_ref().map(|l| l.column()),
        );
        let message = strip_key(&key, &strip_location(&inner.to_string(), line, column));
        ConfigError::File {
            file: path.to_owned(),
            line,
            column,
            // "." is what serde_path_to_error prints for the document itself.
            key: (key != ".").then_some(key),
            message,
        }
    })
}

/// serde_norway puts " at line L column C" (the error's own location) in its messages; the
/// error shows it up front instead. Other locations (where a flow sequence began) stay.
fn strip_location(message: &str, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => message.replacen(&format!(" at line {l} column {c}"), "", 1),
        _ => message.to_owned(),
    }
}

/// serde_norway also starts some messages with the key, which the error already names.
fn strip_key(key: &str, message: &str) -> String {
    message
        .strip_prefix(&format!("{key}: "))
        .unwrap_or(message)
        .to_owned()
}
