//! Probe hits per request, counted by the agent's kernel counters on /metrics, for each protocol
//! a Go server speaks: HTTP/1.1, HTTP/1.1 over TLS and HTTP/2 over TLS.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde::Serialize;

use crate::http::{get, metric};
use crate::procs::{free_port, Agent, AgentRun, ProbeMode, Service, Target};
use crate::Bench;

#[derive(Clone, Debug, Serialize)]
pub struct ProbeHits {
    pub protocol: &'static str,
    pub requests: u64,
    pub entry_hits: u64,
    pub return_hits: u64,
    pub events: u64,
    pub spans: u64,
}

const PREFIX: &str = "http_autoinstrument_";

fn counters(port: u16) -> Result<[u64; 4]> {
    let page = String::from_utf8(get(port, "/metrics")?.body)?;
    let read = |name: &str| -> Result<u64> {
        metric(&page, &format!("{PREFIX}{name}"))
            .map(|v| v as u64)
            .with_context(|| format!("no {PREFIX}{name} on /metrics"))
    };
    Ok([
        read("probe_hits_total{probe=\"entry\"}")?,
        read("probe_hits_total{probe=\"return\"}")?,
        read("kernel_events_submitted_total")?,
        read("spans_exported_total")?,
    ])
}

pub fn measure(bench: &Bench) -> Result<Vec<ProbeHits>> {
    let requests = bench.settings.hit_requests;
    let service = Service::start(&bench.server)?;
    let metrics_port = free_port()?;
    let dir = tempfile::tempdir_in(bench.work.path())?;
    let mut agent = Agent::start(
        &bench.agent,
        &AgentRun {
            probe_mode: ProbeMode::Full,
            plugins: None,
            otlp_endpoint: Some(bench.sink.endpoint.clone()),
            target: Target::Pid(service.pid),
            metrics_port: Some(metrics_port),
        },
        dir.path(),
    )?;
    agent.wait_tracing(Duration::from_secs(60))?;
    let protocols: [(&str, String, &str); 3] = [
        (
            "HTTP/1.1",
            format!("http://127.0.0.1:{}", service.http_port),
            "--http1.1",
        ),
        (
            "HTTPS (HTTP/1.1 over TLS)",
            format!("https://127.0.0.1:{}", service.https_port),
            "--http1.1",
        ),
        (
            "HTTP/2 over TLS",
            format!("https://127.0.0.1:{}", service.https_port),
            "--http2",
        ),
    ];
    let mut out = Vec::new();
    for (protocol, base, flag) in protocols {
        let before = counters(metrics_port)?;
        // One curl, one connection, `requests` requests (URL globbing).
        let status = Command::new("curl")
            .args(["-sk", "--fail", flag])
            .arg(format!("{base}/hits?n=[1-{requests}]"))
            .stdout(Stdio::null())
            .status()
            .context("running curl")?;
        ensure!(status.success(), "curl {base} failed: {status}");
        // Spans reach the sink within a poll interval and an export batch.
        let started = Instant::now();
        let after = loop {
            let now = counters(metrics_port)?;
            if now[3] - before[3] >= requests || started.elapsed() > Duration::from_secs(10) {
                break now;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let hits = ProbeHits {
            protocol,
            requests,
            entry_hits: after[0] - before[0],
            return_hits: after[1] - before[1],
            events: after[2] - before[2],
            spans: after[3] - before[3],
        };
        eprintln!("probe hits: {hits:?}");
        ensure!(hits.spans == requests, "{protocol}: {hits:?}");
        out.push(hits);
    }
    agent.stop()?;
    Ok(out)
}
