//! Time from a target's start to its first exported span, and plugin reload time.
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::procs::{Agent, AgentRun, ProbeMode, Service, Target};
use crate::Bench;

#[derive(Clone, Debug, Serialize)]
pub struct StartupRun {
    /// exec of the service -> its first span printed by the agent.
    pub first_span_ms: f64,
    /// The agent's own inspect + attach time for that process, from its log.
    pub attach_ms: f64,
}

fn attach_ms_of(log: &str, pid: u32) -> Option<f64> {
    log.lines()
        .filter(|l| l.contains(": tracing") && l.contains(&format!("pid={pid} ")))
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("attach_ms="))
        })
        .and_then(|v| v.parse().ok())
}

/// The agent selects the service by executable path and prints spans on stdout; the service is
/// started again and again while a client asks it for `/startup-N` every millisecond.
pub fn measure(bench: &Bench) -> Result<Vec<StartupRun>> {
    let dir = tempfile::tempdir_in(bench.work.path())?;
    let binary = dir.path().join("startup-service");
    std::fs::copy(&bench.server, &binary)?;
    let run = AgentRun {
        probe_mode: ProbeMode::Full,
        plugins: None,
        otlp_endpoint: None,
        target: Target::Exe(binary.clone()),
        metrics_port: None,
        propagation_off: false,
    };
    let mut agent = Agent::start(&bench.agent, &run, dir.path())?;
    let stdout = agent.child().stdout.take().context("agent stdout")?;
    let (lines_tx, lines) = mpsc::channel::<(Instant, String)>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send((Instant::now(), line)).is_err() {
                return;
            }
        }
    });
    // Let the agent load its probes before the first start.
    std::thread::sleep(Duration::from_secs(2));
    let mut runs = Vec::new();
    for round in 0..bench.settings.startups {
        while lines.try_recv().is_ok() {}
        let started = Instant::now();
        let service = Service::start(&binary)?;
        let stop = Arc::new(AtomicBool::new(false));
        let client = {
            let stop = stop.clone();
            let port = service.http_port;
            let path = format!("/startup-{round}");
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    let _ = crate::http::get(port, &path);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        let needle = format!("pid={}", service.pid);
        let first = loop {
            match lines.recv_timeout(Duration::from_secs(30)) {
                Ok((at, line)) if line.contains(&needle) => break at,
                Ok(_) => {}
                Err(_) => bail!(
                    "no span from the started service; agent log:\n{}",
                    agent.log()
                ),
            }
        };
        stop.store(true, Relaxed);
        let _ = client.join();
        let result = StartupRun {
            first_span_ms: first.duration_since(started).as_secs_f64() * 1e3,
            attach_ms: attach_ms_of(&agent.log(), service.pid).unwrap_or(f64::NAN),
        };
        eprintln!("startup: {result:?}");
        runs.push(result);
        drop(service);
        // The agent notices the exit on its next scan and detaches.
        std::thread::sleep(Duration::from_millis(600));
    }
    drop(lines);
    let _ = agent.stop();
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_attach_time_from_the_agent_log() {
        let log = "2026-11-25T04:00:00Z  INFO http_autoinstrument::pipeline::tracker: tracing pid=77 service=s executable=/x go=go1.24.11 return_probes=1 attach_ms=78.5\n";
        assert_eq!(attach_ms_of(log, 77), Some(78.5));
        assert_eq!(attach_ms_of(log, 7), None);
    }
}
