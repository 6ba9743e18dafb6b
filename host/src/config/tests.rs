//! Precedence (file < environment < flags) and every kind of configuration error.
use std::collections::HashMap;
use std::num::{NonZeroU16, NonZeroU64};
use std::path::Path;

use super::*;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The configuration of `flags` alone: no file, no variables.
fn flags_only(flags: Overrides) -> Result<AgentConfig, ConfigError> {
    resolve(None, &HashMap::new(), &flags)
}

/// Why the agent would not start with the file `text` and the variables `env`.
fn start_error(text: &str, env: &[(&str, &str)]) -> String {
    resolve_text(text, env, &Overrides::default())
        .unwrap_err()
        .to_string()
}

fn parse(text: &str) -> Result<AgentConfig, ConfigError> {
    file::parse(Path::new("agent.yaml"), text)
}

fn resolve_text(
    text: &str,
    env: &[(&str, &str)],
    flags: &Overrides,
) -> Result<AgentConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    std::fs::write(&path, text).unwrap();
    resolve(Some(&path), &vars(env), flags)
}

const FILE: &str = "\
targets:
  exe: [\"/srv/*\"]
  port: [8080]
export:
  endpoint: http://file-collector:4318
  protocol: grpc
  headers:
    api-key: from file
log:
  level: debug
  format: json
telemetry:
  metrics_address: 127.0.0.1:9464
capture:
  scan_interval_ms: 500
";

#[test]
fn the_file_sets_every_section() {
    let c = resolve_text(FILE, &[], &Overrides::default()).unwrap();
    assert_eq!(c.targets.exe, ["/srv/*"]);
    assert_eq!(c.targets.port, [NonZeroU16::new(8080).unwrap()]);
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.log.level, "debug");
    assert_eq!(
        c.telemetry.metrics_address,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    assert_eq!(c.capture.scan_interval_ms.get(), 500);
    assert_eq!(c.capture.poll_interval_ms.get(), 50, "default kept");
    match c.export_config() {
        ExportConfig::Otlp(otlp) => {
            assert_eq!(otlp.endpoint, "http://file-collector:4318");
            assert_eq!(otlp.protocol, export::Protocol::Grpc);
            assert_eq!(otlp.headers, [("api-key".into(), "from file".into())]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let env = [
        ("HTTP_AUTOINSTRUMENT_PORT", "9090,9091"),
        ("HTTP_AUTOINSTRUMENT_LOG", "warn"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env-collector:4317"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=from%20env"),
    ];
    let c = resolve_text(FILE, &env, &Overrides::default()).unwrap();
    let ports: Vec<u16> = c.targets.port.iter().map(|p| p.get()).collect();
    assert_eq!(ports, [9090, 9091]);
    assert_eq!(
        c.targets.exe,
        ["/srv/*"],
        "not overridden: kept from the file"
    );
    assert_eq!(c.log.level, "warn");
    assert_eq!(
        c.export.endpoint.as_deref(),
        Some("http://env-collector:4317")
    );
    assert_eq!(c.export.headers["api-key"], "from env");

    let flags = Overrides {
        port: vec![NonZeroU16::new(7070).unwrap()],
        log_level: Some("error".into()),
        otlp_endpoint: Some("http://flag-collector:4317".into()),
        scan_interval_ms: NonZeroU64::new(100),
        ..Overrides::default()
    };
    let c = resolve_text(FILE, &env, &flags).unwrap();
    assert_eq!(c.targets.port, [NonZeroU16::new(7070).unwrap()]);
    assert_eq!(c.log.level, "error");
    assert_eq!(c.capture.scan_interval_ms.get(), 100);
    match c.export_config() {
        ExportConfig::Otlp(otlp) => assert_eq!(otlp.endpoint, "http://flag-collector:4317"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_traces_endpoint_variable_wins_over_the_files_base_endpoint() {
    let env = [(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "http://t:4318/v1/traces",
    )];
    let c = resolve_text(FILE, &env, &Overrides::default()).unwrap();
    match c.export_config() {
        ExportConfig::Otlp(otlp) => assert_eq!(otlp.endpoint, "http://t:4318/v1/traces"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_file_and_no_variables_is_the_default_agent() {
    let c = resolve(None, &HashMap::new(), &Overrides::default()).unwrap();
    assert_eq!(c, AgentConfig::default());
    assert_eq!(c.export_config(), ExportConfig::Stdout);
    assert!(c.selector().unwrap().selects_all());
}

#[test]
fn an_empty_or_comment_only_file_is_the_defaults() {
    assert_eq!(parse("").unwrap(), AgentConfig::default());
    assert_eq!(parse("# nothing yet\n\n").unwrap(), AgentConfig::default());
}

/// The error's text, which must name the file, the line, the key and the expected form.
fn file_error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn an_unknown_key_names_file_line_key_and_the_known_keys() {
    let e = file_error("targets:\n  exe: []\n  ports: [80]\n");
    assert!(e.starts_with("agent.yaml:3:"), "{e}");
    assert!(e.contains("unknown field `ports`"), "{e}");
    assert!(e.contains("expected one of `exe`, `port`, `pid`"), "{e}");
    let e = file_error("exporter:\n  endpoint: x\n");
    assert!(
        e.starts_with("agent.yaml:1:") && e.contains("`exporter`"),
        "{e}"
    );
}

#[test]
fn a_wrong_type_names_the_key_and_the_expected_type() {
    let e = file_error("capture:\n  scan_interval_ms: fast\n");
    assert!(e.starts_with("agent.yaml:2:"), "{e}");
    assert!(e.contains("key `capture.scan_interval_ms`"), "{e}");
    assert!(e.contains("expected a nonzero u64"), "{e}");
    let e = file_error("targets:\n  exe: /srv/app\n");
    assert!(
        e.contains("key `targets.exe`") && e.contains("expected a sequence"),
        "{e}"
    );
}

#[test]
fn impossible_values_name_the_key_and_the_expected_form() {
    for (text, line, key, expected) in [
        (
            "targets:\n  port: [0]\n",
            2,
            "targets.port[0]",
            "expected a nonzero u16",
        ),
        ("targets:\n  port: [70000]\n", 2, "targets.port[0]", "u16"),
        (
            "targets:\n  exe: [\"/srv/[\"]\n",
            2,
            "targets.exe",
            "expected a path pattern",
        ),
        (
            "export:\n  protocol: http\n",
            2,
            "export.protocol",
            "expected `grpc` or `http/protobuf`",
        ),
        (
            "export:\n  endpoint: collector:4318\n",
            2,
            "export.endpoint",
            "no scheme",
        ),
        (
            "export:\n  endpoint: https://c:4318\n",
            2,
            "export.endpoint",
            "https is not supported",
        ),
        (
            "export:\n  headers:\n    \"a b\": x\n",
            2,
            "export.headers",
            "valid HTTP header name",
        ),
        (
            "export:\n  queue_capacity: 0\n",
            2,
            "export.queue_capacity",
            "nonzero",
        ),
        (
            "telemetry:\n  metrics_address: 9464\n",
            2,
            "telemetry.metrics_address",
            "socket address",
        ),
        (
            "log:\n  format: xml\n",
            2,
            "log.format",
            "expected `text` or `json`",
        ),
        (
            "log:\n  level: loud\n",
            2,
            "log.level",
            "expected trace, debug",
        ),
        (
            "resource:\n  k8s_node_name: \"\"\n",
            2,
            "resource.k8s_node_name",
            "expected a name",
        ),
        (
            "plugins:\n  batch_size: -1\n",
            2,
            "plugins.batch_size",
            "usize",
        ),
    ] {
        let e = file_error(text);
        assert!(
            e.starts_with(&format!("agent.yaml:{line}:")),
            "{text:?}: {e}"
        );
        assert!(e.contains(&format!("key `{key}`")), "{text:?}: {e}");
        assert!(e.contains(expected), "{text:?}: {e}");
    }
}

#[test]
fn yaml_syntax_errors_name_the_line() {
    let e = file_error("targets:\n  exe: [\"/a\"\nlog: {}\n");
    assert!(e.starts_with("agent.yaml:3:1: "), "{e}");
    assert!(e.contains("did not find expected ',' or ']'"), "{e}");
    assert!(
        !e.contains(" at line 3 column 1"),
        "location shown once, up front: {e}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let e = resolve(
        Some(Path::new("/nonexistent/agent.yaml")),
        &HashMap::new(),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("cannot read the configuration file /nonexistent/agent.yaml"),
        "{e}"
    );
}

#[test]
fn bad_environment_values_name_the_variable_and_the_expected_form() {
    for (var, value, expected) in [
        (
            "HTTP_AUTOINSTRUMENT_PORT",
            "80,http",
            "a TCP port from 1 to 65535",
        ),
        ("HTTP_AUTOINSTRUMENT_PID", "0", "a process id"),
        (
            "HTTP_AUTOINSTRUMENT_EXE",
            "/srv/[",
            "expected a path pattern",
        ),
        (
            "HTTP_AUTOINSTRUMENT_METRICS_ADDRESS",
            "localhost",
            "IP:PORT",
        ),
        (
            "HTTP_AUTOINSTRUMENT_LOG",
            "info,=[",
            "expected trace, debug",
        ),
        (
            "HTTP_AUTOINSTRUMENT_LOG_FORMAT",
            "xml",
            "\"text\" or \"json\"",
        ),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http",
            "\"grpc\" or \"http/protobuf\"",
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector", "no scheme"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "milliseconds"),
    ] {
        let e = resolve(None, &vars(&[(var, value)]), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(var), "{var}: {e}");
        assert!(e.contains(expected), "{var}: {e}");
    }
}

#[test]
fn bad_flag_values_name_the_flag() {
    let flags = Overrides {
        otlp_endpoint: Some("collector:4317".into()),
        ..Overrides::default()
    };
    let e = resolve(None, &HashMap::new(), &flags)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("flag --otlp-endpoint") && e.contains("no scheme"),
        "{e}"
    );
    let flags = Overrides {
        log_level: Some("info,=[".into()),
        ..Overrides::default()
    };
    let e = resolve(None, &HashMap::new(), &flags)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("flag --log-level"), "{e}");
}

#[test]
fn a_plugins_dir_that_is_not_a_directory_is_refused_with_the_fix() {
    let e = resolve_text(
        "plugins:\n  dir: /nonexistent/plugins\n",
        &[],
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("plugins.dir") && e.contains("not a directory"),
        "{e}"
    );
}

#[test]
fn a_wakeup_level_the_ring_buffer_cannot_hold_is_refused() {
    let too_many = crate::attach::MAX_WAKEUP_EVENTS + 1;
    let e = resolve_text(
        &format!("capture:\n  wakeup_events: {too_many}\n"),
        &[],
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("capture.wakeup_events") && e.contains("at most"),
        "{e}"
    );
    let most = format!("capture:\n  wakeup_events: {}\n", too_many - 1);
    assert!(resolve_text(&most, &[], &Overrides::default()).is_ok());
}

#[test]
fn the_printed_configuration_reads_back_and_hides_header_values() {
    let c = resolve_text(FILE, &[], &Overrides::default()).unwrap();
    let printed = c.to_yaml();
    assert!(!printed.contains("from file"), "{printed}");
    assert!(printed.contains("api-key: <redacted>"), "{printed}");
    let mut back = parse(&printed).unwrap();
    back.export.headers = c.export.headers.clone();
    assert_eq!(back, c);
}

#[test]
fn the_file_path_comes_from_the_flag_then_the_variable() {
    let env = vars(&[("HTTP_AUTOINSTRUMENT_CONFIG", "/etc/a.yaml")]);
    assert_eq!(
        file_path(Some(Path::new("/b.yaml")), &env).unwrap(),
        Path::new("/b.yaml")
    );
    assert_eq!(file_path(None, &env).unwrap(), Path::new("/etc/a.yaml"));
    assert_eq!(file_path(None, &HashMap::new()), None);
}

#[test]
fn a_queue_smaller_than_a_batch_is_refused_naming_both_settings_and_the_fix() {
    let e = start_error(
        "export:\n  queue_capacity: 10\n  max_batch_size: 512\n",
        &[],
    );
    assert!(e.starts_with("export.queue_capacity = \"10\""), "{e}");
    assert!(e.contains("export.max_batch_size (512)"), "{e}");
    assert!(
        e.contains("raise export.queue_capacity to at least 512"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.yaml");
    std::fs::write(&file, "export:\n  queue_capacity: 10\n").unwrap();
    let e = check_file(&file).unwrap_err().to_string();
    assert!(
        e.contains("export.max_batch_size (512)"),
        "config check too: {e}"
    );
    let equal = "export:\n  queue_capacity: 512\n  max_batch_size: 512\n";
    assert!(resolve_text(equal, &[], &Overrides::default()).is_ok());
}

#[test]
fn a_pid_that_does_not_exist_is_refused_at_start() {
    let with_pid = |pid: u32| {
        flags_only(Overrides {
            pid: vec![std::num::NonZeroU32::new(pid).unwrap()],
            ..Overrides::default()
        })
    };
    // Beyond any pid_max (at most 2^22): never a process.
    let e = with_pid(4_000_000_000).unwrap_err().to_string();
    assert!(
        e.starts_with("targets.pid = \"4000000000\": no such process"),
        "{e}"
    );
    assert!(e.contains("--exe or --port"), "{e}");
    assert!(with_pid(std::process::id()).is_ok());
}

#[test]
fn a_scan_interval_below_the_minimum_is_refused() {
    let with_scan = |ms: u64| {
        flags_only(Overrides {
            scan_interval_ms: NonZeroU64::new(ms),
            ..Overrides::default()
        })
    };
    let e = with_scan(MIN_SCAN_INTERVAL_MS - 1).unwrap_err().to_string();
    assert!(
        e.starts_with("capture.scan_interval_ms = \"9\": at least 10"),
        "{e}"
    );
    assert!(with_scan(MIN_SCAN_INTERVAL_MS).is_ok());
}

#[test]
fn the_endpoint_names_where_it_was_set() {
    let endpoint_from = |c: &AgentConfig| match c.export_config() {
        ExportConfig::Otlp(otlp) => otlp.endpoint_var,
        other => panic!("{other:?}"),
    };
    let c = resolve_text(FILE, &[], &Overrides::default()).unwrap();
    assert_eq!(endpoint_from(&c), "export.endpoint");
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317")];
    let c = resolve_text(FILE, &env, &Overrides::default()).unwrap();
    assert_eq!(endpoint_from(&c), "OTEL_EXPORTER_OTLP_ENDPOINT");
    let flags = Overrides {
        otlp_endpoint: Some("http://flag:4317".into()),
        ..Overrides::default()
    };
    let c = resolve_text(FILE, &env, &flags).unwrap();
    assert_eq!(endpoint_from(&c), "--otlp-endpoint");
}

#[test]
fn the_protocol_variable_is_parsed_once_into_the_files_type() {
    let env = [("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")];
    let c = resolve_text(FILE, &env, &Overrides::default()).unwrap();
    assert_eq!(c.export.protocol, Some(export::Protocol::HttpProtobuf));
    let env = [("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")];
    let c = resolve_text(FILE, &env, &Overrides::default()).unwrap();
    assert_eq!(c.export.compression, Some(export::Compression::Gzip));
    let e = start_error(FILE, &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
    assert!(
        e.starts_with("OTEL_EXPORTER_OTLP_PROTOCOL=\"http/json\""),
        "{e}"
    );
}
