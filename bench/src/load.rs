//! Open-loop load at a fixed request rate (wrk only saturates): each connection sends on its own
//! schedule, so the agent sees a steady rate whatever the service's latency.
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use serde::Serialize;

use crate::http::Connection;

#[derive(Clone, Copy, Debug, Serialize)]
pub struct LoadResult {
    pub target_rate: f64,
    pub requests: u64,
    pub achieved_rate: f64,
}

/// GET `path` at `rate` requests/s over `connections` keep-alive connections for `duration`.
pub fn fixed_rate(
    port: u16,
    path: &str,
    rate: f64,
    connections: usize,
    duration: Duration,
) -> Result<LoadResult> {
    let interval = Duration::from_secs_f64(connections as f64 / rate);
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|i| {
            let path = path.to_string();
            std::thread::spawn(move || -> Result<u64> {
                let mut connection = Connection::open(port)?;
                // Stagger the connections across one interval.
                let mut next = started + interval.mul_f64(i as f64 / connections as f64);
                let mut sent = 0u64;
                while next < started + duration {
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let response = connection.get(&path)?;
                    ensure!(response.status() == Some(200), "{}", response.head);
                    sent += 1;
                    next += interval;
                }
                Ok(sent)
            })
        })
        .collect();
    let mut requests = 0;
    for worker in workers {
        requests += worker.join().expect("load thread panicked")?;
    }
    Ok(LoadResult {
        target_rate: rate,
        requests,
        achieved_rate: requests as f64 / started.elapsed().as_secs_f64(),
    })
}
