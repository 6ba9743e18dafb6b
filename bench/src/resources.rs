//! The agent's own CPU and memory at idle and at steady request rates, with and without the
//! three plugins.
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::load::fixed_rate;
use crate::procs::{cpu_percent, sample, Agent, AgentRun, ProbeMode, Service, Target};
use crate::Bench;

#[derive(Clone, Debug, Serialize)]
pub struct ResourceRun {
    pub plugins: bool,
    /// Requests/s asked for; 0 = idle.
    pub target_rate: f64,
    pub achieved_rate: f64,
    /// Percent of one core.
    pub cpu_percent: f64,
    pub rss_mib: f64,
    /// Peak RSS since start (plugin compilation included).
    pub peak_rss_mib: f64,
}

pub fn measure(bench: &Bench) -> Result<Vec<ResourceRun>> {
    let service = Service::start(&bench.server)?;
    let mut runs = Vec::new();
    for plugins in [false, true] {
        let dir = tempfile::tempdir_in(bench.work.path())?;
        let run = AgentRun {
            probe_mode: ProbeMode::Full,
            plugins: plugins.then(|| bench.three_plugins.path().to_path_buf()),
            otlp_endpoint: Some(bench.sink.endpoint.clone()),
            target: Target::Pid(service.pid),
            metrics_port: None,
            propagation_off: false,
        };
        let mut agent = Agent::start(&bench.agent, &run, dir.path())?;
        agent.wait_tracing(Duration::from_secs(60))?;
        let pid = agent.pid();
        // Idle last: right after start the resident size still holds what compiling the plugins
        // used (reported as peak).
        for &rate in bench.settings.rates.iter().chain(std::iter::once(&0.0)) {
            let before = sample(pid)?;
            let achieved_rate = if rate == 0.0 {
                std::thread::sleep(bench.settings.duration);
                0.0
            } else {
                let connections = (rate / 500.0).ceil().clamp(2.0, 32.0) as usize;
                fixed_rate(
                    service.http_port,
                    "/",
                    rate,
                    connections,
                    bench.settings.duration,
                )?
                .achieved_rate
            };
            let after = sample(pid)?;
            let result = ResourceRun {
                plugins,
                target_rate: rate,
                achieved_rate,
                cpu_percent: cpu_percent(&before, &after),
                rss_mib: after.rss_kib as f64 / 1024.0,
                peak_rss_mib: after.hwm_kib as f64 / 1024.0,
            };
            eprintln!("resources: {result:?}");
            runs.push(result);
        }
        agent.stop()?;
    }
    Ok(runs)
}
