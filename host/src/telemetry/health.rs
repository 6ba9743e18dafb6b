//! Liveness and readiness, as Kubernetes probes ask for them.
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::pipeline::AgentStats;

/// The agent is live while it serves at all (the server runs on the agent's own runtime, so a
/// wedged runtime stops answering). It is ready once the probes are loaded, the exporter is
/// configured (both happen before the server starts) and the first scan of /proc has attached
/// the probes to every target that was already running.
#[derive(Clone, Debug)]
pub struct Health {
    stats: Arc<AgentStats>,
}

impl Health {
    pub fn new(stats: Arc<AgentStats>) -> Self {
        Health { stats }
    }

    /// `Ok(why)` when ready, `Err(why not)` otherwise.
    pub fn readiness(&self) -> Result<String, String> {
        let scans = self.stats.scans_completed.load(Relaxed);
        if scans == 0 {
            return Err("not ready: the first scan for target processes has not finished\n".into());
        }
        Ok(format!(
            "ready: probes loaded, exporter configured, {} processes traced\n",
            self.stats.processes_traced.load(Relaxed)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_after_the_first_scan() {
        let stats = Arc::new(AgentStats::default());
        let health = Health::new(stats.clone());
        assert!(health.readiness().is_err());
        AgentStats::add(&stats.scans_completed, 1);
        stats.processes_traced.store(2, Relaxed);
        assert_eq!(
            health.readiness().unwrap(),
            "ready: probes loaded, exporter configured, 2 processes traced\n"
        );
    }
}
