//! The end-to-end harness: the agent binary run as a user runs it, its logs, the receiver's
//! environment, and the requests and reads the tests make.
#![allow(dead_code)] // each test binary uses a different part of this file

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::otlp_receiver::OtlpReceiver;

pub const AGENT: &str = env!("CARGO_BIN_EXE_http-autoinstrument");
pub const SPAN_TIMEOUT: Duration = Duration::from_secs(15);

#[allow(unused_imports)] // each test binary uses a different part
pub use super::skip::{in_ci, skip};

/// True when this test can use eBPF; panics under CI when it cannot.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip("end-to-end tests need root (real eBPF): run them with sudo");
    false
}

/// The newest installed Go version.
pub fn newest_go() -> Option<String> {
    super::go_fixtures::newest().map(|g| g.version)
}

/// The newest installed Go version, when an end-to-end test can run (root; a toolchain,
/// required in CI).
pub fn root_and_newest_go() -> Option<String> {
    if !require_root() {
        return None;
    }
    let newest = newest_go();
    if newest.is_none() {
        skip("no Go toolchain installed: run scripts/setup.sh");
    }
    newest
}

/// The installed Go releases as (version, minor); under CI, one of every supported series.
pub fn go_fixtures_versions() -> Vec<(String, u32)> {
    let versions: Vec<(String, u32)> = super::go_fixtures::go_versions()
        .into_iter()
        .map(|t| {
            let minor = t.numbers().1;
            (t.version, minor)
        })
        .collect();
    let minors: HashSet<u32> = versions.iter().map(|(_, m)| *m).collect();
    let missing: Vec<u32> = (21..=27).filter(|m| !minors.contains(m)).collect();
    if !missing.is_empty() {
        let message = format!("Go 1.{missing:?} not installed: run scripts/setup.sh");
        assert!(!in_ci(), "{message}");
        eprintln!("note: {message}");
    }
    versions
}

/// The agent binary, running until dropped (SIGTERM, then wait).
pub struct Agent {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    pub fn start(args: &[String], env: &[(&str, String)]) -> Agent {
        let mut cmd = Command::new(AGENT);
        cmd.args(args).args(["--stats-interval-secs", "0"]);
        if !args.iter().any(|a| a == "--scan-interval-ms") {
            cmd.args(["--scan-interval-ms", "100"]);
        }
        cmd.env("HTTP_AUTOINSTRUMENT_LOG", "info")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting the agent");
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        Agent { child, log }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits for a log line containing every one of `needles`.
    pub fn wait_for_log(&mut self, needles: &[&str], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .log
                .lock()
                .unwrap()
                .iter()
                .any(|l| needles.iter().all(|n| l.contains(n)))
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "agent exited ({status}) before logging {needles:?}:\n{}",
                    self.log_text()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "agent did not log {needles:?} within {timeout:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_until_tracing(&mut self, pid: u32) -> Duration {
        let started = Instant::now();
        self.wait_for_log(&["tracing", &format!("pid={pid}")], Duration::from_secs(20));
        started.elapsed()
    }

    /// Stops the agent and returns its final counters line.
    pub fn stop(mut self) -> String {
        // SAFETY: kill with a pid we own.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("waiting for the agent");
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log_text();
        assert!(
            status.success(),
            "agent failed at shutdown: {status}\n{log}"
        );
        log.lines()
            .find(|l| l.contains("final stats:"))
            .unwrap_or_else(|| panic!("no final stats line:\n{log}"))
            .to_owned()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn otlp_env(receiver: &OtlpReceiver, grpc: bool) -> Vec<(&'static str, String)> {
    if grpc {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ]
    } else {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
        ]
    }
}

pub fn curl(args: &[String]) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "-k", "-o", "/dev/null", "--max-time", "10"])
        .args(args)
        .output()
        .expect("running curl")
}

/// A copy of `binary` named `name` in a directory of its own (removed when the guard drops).
pub fn private_copy(
    binary: &std::path::Path,
    name: &str,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(name);
    std::fs::copy(binary, &copy).unwrap();
    (dir, copy)
}

/// The address the agent serves /metrics on (started with `--metrics-address 127.0.0.1:0`).
pub fn metrics_address(agent: &mut Agent) -> String {
    agent.wait_for_log(&["serving /metrics"], Duration::from_secs(20));
    agent
        .log_text()
        .lines()
        .find(|l| l.contains("serving /metrics"))
        .and_then(|l| l.split("address=").nth(1))
        .map(|a| a.split_whitespace().next().unwrap().to_owned())
        .expect("the log names the metrics address")
}

/// `GET http://{address}{path}`: (status code, body).
pub fn http_get(address: &str, path: &str) -> (String, String) {
    // `curl` above discards bodies; this one keeps them.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://{address}{path}"))
        .output()
        .expect("running curl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.to_owned(), body.to_owned())
}

/// The value of the sample `name` (with its labels, as exposed) in a Prometheus text page.
pub fn metric(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{page}"))
        .trim()
        .parse::<f64>()
        .unwrap() as u64
}
