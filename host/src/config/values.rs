//! Checks of single values, shared by the file, environment and flag layers so each one gives
//! the same message whatever the source. Each message says what was expected.

pub fn check_glob(glob: &str) -> Result<(), String> {
    glob::Pattern::new(glob).map(drop).map_err(|e| {
        format!("{glob:?} is not a valid glob ({e}): expected a path pattern such as \"/srv/*\"")
    })
}

pub fn check_log_level(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    // A bare word is a valid directive to `tracing` (a module name, every level), but here it
    // is far more likely a misspelt level: refuse it.
    let misspelt = filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.contains('=') && !d.contains('['))
        .find(|d| !LEVELS.contains(&d.to_ascii_lowercase().as_str()));
    let parsed = match misspelt {
        Some(word) => Err(format!("{word:?} is not a level")),
        None => tracing_subscriber::EnvFilter::builder()
            .parse(filter)
            .map(drop)
            .map_err(|e| e.to_string()),
    };
    parsed.map_err(|e| {
        format!(
            "{filter:?} is not a log filter ({e}): expected trace, debug, info, warn or error, \
             optionally with per-module directives such as \"info,http_autoinstrument=debug\""
        )
    })
}

/// A sampling ratio: from 0 to 1.
pub fn check_ratio(value: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{value} is not a ratio: expected a number from 0 to 1, e.g. 0.25"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check_names_the_expected_form() {
        assert!(check_glob("/srv/[")
            .unwrap_err()
            .contains("expected a path pattern"));
        assert!(crate::export::check_endpoint("collector:4318")
            .unwrap_err()
            .contains("no scheme"));
        assert!(check_log_level("info,=[")
            .unwrap_err()
            .contains("expected trace, debug"));
        assert!(check_log_level("info,http_autoinstrument=debug").is_ok());
    }
}
