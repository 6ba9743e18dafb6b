//! The traced processes the span stage needs to know about: their resources, by pid.
//!
//! An exited process stays known for a grace period, because its last events can still be in the
//! ring buffer when the scan notices the exit.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::span::{Attribute, Resource};

const EXITED_GRACE: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Table {
    live: HashMap<u32, Arc<Resource>>,
    exited: HashMap<u32, (Arc<Resource>, Instant)>,
}

#[derive(Clone, Default)]
pub struct ProcessTable {
    inner: Arc<RwLock<Table>>,
}

impl ProcessTable {
    pub fn insert(&self, pid: u32, resource: Resource) {
        let mut t = self.inner.write().unwrap();
        t.exited.remove(&pid);
        t.live.insert(pid, Arc::new(resource));
    }

    pub fn mark_exited(&self, pid: u32) {
        let mut t = self.inner.write().unwrap();
        if let Some(r) = t.live.remove(&pid) {
            t.exited.insert(pid, (r, Instant::now()));
        }
        t.exited.retain(|_, (_, at)| at.elapsed() < EXITED_GRACE);
    }

    /// The resource of `pid`; a minimal one (pid only) for a process the agent no longer knows.
    pub fn resource(&self, pid: u32) -> Arc<Resource> {
        let t = self.inner.read().unwrap();
        if let Some(r) = t
            .live
            .get(&pid)
            .or_else(|| t.exited.get(&pid).map(|(r, _)| r))
        {
            return r.clone();
        }
        Arc::new(Resource {
            attributes: vec![
                Attribute::new("service.name", "unknown_service"),
                Attribute::new("process.pid", i64::from(pid)),
            ],
        })
    }

    pub fn live_count(&self) -> usize {
        self.inner.read().unwrap().live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exited_processes_keep_their_resource_for_late_events() {
        let table = ProcessTable::default();
        table.insert(
            5,
            Resource {
                attributes: vec![Attribute::new("service.name", "shop")],
            },
        );
        table.mark_exited(5);
        assert_eq!(table.resource(5).service_name(), "shop");
        assert_eq!(table.live_count(), 0);
        assert_eq!(table.resource(6).service_name(), "unknown_service");
    }
}
