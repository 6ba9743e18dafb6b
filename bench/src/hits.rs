//! Probe hits per request, counted by the agent's kernel counters on /metrics, for each protocol
//! a Go server speaks (HTTP/1.1, HTTP/1.1 over TLS and HTTP/2 over TLS) and for each protocol its
//! net/http client calls another service with: requests to the traced service's `/call`, which
//! makes one call to a second, untraced copy of the fixture per request. Trace context propagation
//! is on (as a dry run where the kernel forbids its writes), so its header-write hits count.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde::Serialize;

use crate::http::{get, metric};
use crate::procs::{free_port, Agent, AgentRun, ProbeMode, Service, Target};
use crate::Bench;

/// What one request to the traced service does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Requests {
    /// Answers it: one server span.
    Served,
    /// Answers it after one client call to the untraced copy: a server and a client span.
    CallsOut,
}

impl Requests {
    pub fn label(self) -> &'static str {
        match self {
            Requests::Served => "server",
            Requests::CallsOut => "server + 1 client call",
        }
    }

    fn spans(self) -> u64 {
        match self {
            Requests::Served => 1,
            Requests::CallsOut => 2,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ProbeHits {
    pub requests_do: Requests,
    /// The server's protocol for `Served`, the client call's for `CallsOut`.
    pub protocol: &'static str,
    pub requests: u64,
    pub entry_hits: u64,
    pub request_end_hits: u64,
    pub client_start_hits: u64,
    pub client_return_hits: u64,
    /// Hits of the programs that add `traceparent` to the request's header bytes.
    pub header_write_hits: u64,
    pub events: u64,
    pub spans: u64,
    /// Propagation ran in probe mode `propagation-dry-run` (the kernel forbade its writes).
    pub dry_run: bool,
}

impl ProbeHits {
    pub fn server_hits_per_request(&self) -> f64 {
        (self.entry_hits + self.request_end_hits) as f64 / self.requests as f64
    }

    /// A call's start and return hits, without its header write.
    pub fn start_return_hits_per_request(&self) -> f64 {
        (self.client_start_hits + self.client_return_hits) as f64 / self.requests as f64
    }

    pub fn header_writes_per_request(&self) -> f64 {
        self.header_write_hits as f64 / self.requests as f64
    }

    /// Every trap a call costs: its start, its return and its header write.
    pub fn client_hits_per_request(&self) -> f64 {
        self.start_return_hits_per_request() + self.header_writes_per_request()
    }
}

const PREFIX: &str = "http_autoinstrument_";

fn counters(port: u16) -> Result<[u64; 7]> {
    let page = String::from_utf8(get(port, "/metrics")?.body)?;
    let read = |name: &str| -> Result<u64> {
        metric(&page, &format!("{PREFIX}{name}"))
            .map(|v| v as u64)
            .with_context(|| format!("no {PREFIX}{name} on /metrics"))
    };
    Ok([
        read("probe_hits_total{probe=\"entry\"}")?,
        read("probe_hits_total{probe=\"request_end\"}")?,
        read("probe_hits_total{probe=\"client_start\"}")?,
        read("probe_hits_total{probe=\"client_return\"}")?,
        read("probe_hits_total{probe=\"header_write\"}")?,
        read("kernel_events_submitted_total")?,
        read("spans_exported_total")?,
    ])
}

/// One way of loading the traced service: what its requests do, the protocol, the base URL curl
/// requests and curl's protocol flag.
struct Case {
    requests_do: Requests,
    protocol: &'static str,
    base: String,
    flag: &'static str,
}

pub fn measure(bench: &Bench) -> Result<Vec<ProbeHits>> {
    let requests = bench.settings.hit_requests;
    let service = Service::start(&bench.server)?;
    // Its own file, and the agent follows the traced service's pid only: B takes no trap.
    let callee = Service::start_copy(&bench.server, &bench.work.path().join("service-callee"))?;
    let metrics_port = free_port()?;
    let dir = tempfile::tempdir_in(bench.work.path())?;
    let (agent, dry_run) = Agent::start_propagating(
        &bench.agent,
        &AgentRun {
            probe_mode: ProbeMode::Full,
            plugins: None,
            otlp_endpoint: Some(bench.sink.endpoint.clone()),
            target: Target::Pid(service.pid),
            metrics_port: Some(metrics_port),
            propagation_off: false,
        },
        dir.path(),
    )?;
    let http = format!("http://127.0.0.1:{}", service.http_port);
    let https = format!("https://127.0.0.1:{}", service.https_port);
    // The client calls: curl asks the traced service over HTTP/1.1, which calls the copy.
    let call = |url: String, h2: bool| {
        format!("{http}/call?url={url}{}", if h2 { "&proto=h2" } else { "" })
    };
    let callee_http = format!("http://127.0.0.1:{}/", callee.http_port);
    let callee_https = format!("https://127.0.0.1:{}/", callee.https_port);
    let cases = [
        Case {
            requests_do: Requests::Served,
            protocol: "HTTP/1.1",
            base: format!("{http}/hits?"),
            flag: "--http1.1",
        },
        Case {
            requests_do: Requests::Served,
            protocol: "HTTPS (HTTP/1.1 over TLS)",
            base: format!("{https}/hits?"),
            flag: "--http1.1",
        },
        Case {
            requests_do: Requests::Served,
            protocol: "HTTP/2 over TLS",
            base: format!("{https}/hits?"),
            flag: "--http2",
        },
        Case {
            requests_do: Requests::CallsOut,
            protocol: "HTTP/1.1",
            base: format!("{}&", call(callee_http, false)),
            flag: "--http1.1",
        },
        Case {
            requests_do: Requests::CallsOut,
            protocol: "HTTPS (HTTP/1.1 over TLS)",
            base: format!("{}&", call(callee_https.clone(), false)),
            flag: "--http1.1",
        },
        Case {
            requests_do: Requests::CallsOut,
            protocol: "HTTP/2 over TLS",
            base: format!("{}&", call(callee_https, true)),
            flag: "--http1.1",
        },
    ];
    let mut out = Vec::new();
    for case in cases {
        let before = counters(metrics_port)?;
        // One curl, one connection, `requests` requests (URL globbing).
        let output = Command::new("curl")
            .args(["-sk", "--fail", case.flag])
            .arg(format!("{}n=[1-{requests}]", case.base))
            .stderr(Stdio::inherit())
            .output()
            .context("running curl")?;
        ensure!(
            output.status.success(),
            "curl {} failed: {}",
            case.base,
            output.status
        );
        if case.requests_do == Requests::CallsOut {
            // Every call reached the copy: /call answers 502 (which --fail turns into an
            // error) when it did not, and "called: 200" when it did.
            let answers = String::from_utf8_lossy(&output.stdout);
            let called = answers.matches("called: 200").count() as u64;
            ensure!(
                called == requests,
                "{}: {called} of {requests} calls answered 200",
                case.base
            );
        }
        let expected_spans = requests * case.requests_do.spans();
        // Spans reach the sink within a poll interval and an export batch; the kernel's
        // counters reach /metrics at the agent's next scan, which may come after the spans: each
        // span is one event, so once the events counted are all there, so are the hits.
        let started = Instant::now();
        let after = loop {
            let now = counters(metrics_port)?;
            let all_in =
                now[6] - before[6] >= expected_spans && now[5] - before[5] >= expected_spans;
            if all_in || started.elapsed() > Duration::from_secs(10) {
                break now;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let hits = ProbeHits {
            requests_do: case.requests_do,
            protocol: case.protocol,
            requests,
            entry_hits: after[0] - before[0],
            request_end_hits: after[1] - before[1],
            client_start_hits: after[2] - before[2],
            client_return_hits: after[3] - before[3],
            header_write_hits: after[4] - before[4],
            events: after[5] - before[5],
            spans: after[6] - before[6],
            dry_run,
        };
        eprintln!("probe hits: {hits:?}");
        ensure!(
            hits.spans == expected_spans,
            "{} {}: {expected_spans} spans expected: {hits:?}",
            case.requests_do.label(),
            case.protocol
        );
        // Propagation is on: every call's headers pass the write probe once, whether or not it
        // writes (it does not in the dry run) and whatever the protocol.
        let writes = match case.requests_do {
            Requests::CallsOut => requests,
            Requests::Served => 0,
        };
        ensure!(
            hits.header_write_hits == writes,
            "{} {}: {writes} header-write hits expected: {hits:?}",
            case.requests_do.label(),
            case.protocol
        );
        out.push(hits);
    }
    agent.stop()?;
    Ok(out)
}
