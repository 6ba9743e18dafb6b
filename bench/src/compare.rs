//! Two builds of the agent side by side, for changes to the probes: each traces its own copy of
//! the service, both services share the service core at once under the same load, and the
//! kernel's accounting gives each build's BPF run time per request.
//!
//! A probe change worth a few percent is invisible in sequential runs here: the host's speed
//! drifts by more than that between two measurements. Measured at the same moment on the same
//! core, both builds see the same host, and the ratio of their run times is steady (an A/A run
//! shows the spread to expect).
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Result};

use crate::bpfstats;
use crate::procs::{Agent, AgentRun, ProbeMode, Service, Target};
use crate::sink::OtlpSink;
use crate::stats::Summary;
use crate::wrk;

/// One round: each build's BPF run time per request, in ns.
#[derive(Clone, Copy, Debug)]
pub struct Round {
    pub a_ns: f64,
    pub b_ns: f64,
}

impl Round {
    pub fn ratio(&self) -> f64 {
        self.b_ns / self.a_ns
    }
}

/// Runs `rounds` rounds of `duration` with build `a` and build `b` of the agent (no plugins: the
/// probes are what is compared), and prints each round. `require_keeping_pace`: fail if a build
/// lost events (off for the smoke run's debug builds, which cannot keep up). `headers` go on
/// every request.
pub fn compare(
    a: &Path,
    b: &Path,
    server: &Path,
    rounds: usize,
    duration: Duration,
    require_keeping_pace: bool,
    headers: &[&str],
) -> Result<Vec<Round>> {
    let work = tempfile::tempdir()?;
    // A copy, so the two builds' uprobes sit on different files and neither filters the other's
    // hits.
    let services = [
        Service::start(server)?,
        Service::start_copy(server, &work.path().join("service-b"))?,
    ];
    // Both export, as the agent does in use (a build that fell behind would lose events, and a
    // lost event skips most of the request-end probe's work).
    let sink = OtlpSink::start()?;
    let urls: Vec<String> = services
        .iter()
        .map(|s| format!("http://127.0.0.1:{}/", s.http_port))
        .collect();
    let mut results = Vec::new();
    for round in 1..=rounds {
        // Fresh agents every round, and the services swapped every other round: two instances
        // of the same build differ on their own (where the kernel happened to place their
        // maps and ring buffer, which service), and this spreads that over both builds.
        let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        let mut agents = Vec::new();
        for (build, &service) in [a, b].iter().zip(&order) {
            let dir = work.path().join(format!("round-{round}-{}", agents.len()));
            std::fs::create_dir(&dir)?;
            let run = AgentRun {
                probe_mode: ProbeMode::Full,
                plugins: None,
                otlp_endpoint: Some(sink.endpoint.clone()),
                target: Target::Pid(services[service].pid),
                metrics_port: None,
                propagation_off: false,
            };
            let mut agent = Agent::start(build, &run, &dir)?;
            agent.wait_tracing(Duration::from_secs(60))?;
            agents.push(agent);
        }
        let per_request = bpfstats::with_accounting(|| {
            let before: Vec<_> = agents
                .iter()
                .map(|agent| bpfstats::programs_of(agent.pid()))
                .collect::<Result<_>>()?;
            let ordered: Vec<String> = order.iter().map(|&s| urls[s].clone()).collect();
            let loads = wrk::run_together(&ordered, duration, headers)?;
            agents
                .iter()
                .zip(before)
                .zip(&loads)
                .map(|((agent, before), load)| {
                    bpfstats::ns_per_request(agent.pid(), before, load.requests)
                })
                .collect::<Result<Vec<_>>>()
        })?;
        for (agent, name) in agents.into_iter().zip(["A", "B"]) {
            let stats = agent.stop()?;
            let lost = stats.get("events_lost").copied().unwrap_or(0);
            ensure!(
                lost == 0 || !require_keeping_pace,
                "build {name} lost {lost} events: {stats:?}"
            );
        }
        let r = Round {
            a_ns: per_request[0],
            b_ns: per_request[1],
        };
        eprintln!(
            "compare: round {round}: A {:.0} ns/request, B {:.0} ns/request, B/A {:.3}",
            r.a_ns,
            r.b_ns,
            r.ratio()
        );
        results.push(r);
    }
    if let Some(s) = Summary::of(results.iter().map(Round::ratio)) {
        eprintln!(
            "compare: B/A median {:.3} (min {:.3}, max {:.3}) over {} rounds",
            s.median, s.min, s.max, s.n
        );
    }
    Ok(results)
}
