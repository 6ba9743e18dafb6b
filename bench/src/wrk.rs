//! Saturating load with wrk (one thread, `CONNECTIONS` connections, on the tools core).
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::procs::TOOLS_CPU;

#[derive(Clone, Copy, Debug, Serialize)]
pub struct WrkResult {
    pub requests_per_second: f64,
    pub requests: u64,
    pub p50_us: f64,
    pub p99_us: f64,
}

fn micros(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number,
        "ms" => number * 1e3,
        "s" => number * 1e6,
        _ => return None,
    })
}

pub fn parse(output: &str) -> Option<WrkResult> {
    let field = |prefix: &str| -> Option<&str> {
        output
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .map(str::trim)
    };
    Some(WrkResult {
        requests_per_second: field("Requests/sec:")?.parse().ok()?,
        requests: output
            .lines()
            .find(|l| l.contains(" requests in "))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?,
        p50_us: micros(field("50%")?)?,
        p99_us: micros(field("99%")?)?,
    })
}

/// Requests wrk keeps open. The agent, the OTLP receiver and the peer take turns with wrk on the
/// tools core. While the agent works through a batch, wrk waits, and the service idles once it
/// has answered every open request: with 32 connections it idled 14-16% of the time with the
/// agent at 30-40k requests/s (measured), and a service that idles spends more CPU per request
/// (wakeups), which would be counted as instrumentation cost. 256 open requests are several
/// milliseconds of the service's work: it never idles (with the uninstrumented copy beside it,
/// each takes ~50% of the core in every configuration; the report shows it).
pub const CONNECTIONS: u32 = 256;

/// `run` on each URL at once, `headers` on every request; results in the same order.
pub fn run_together(
    urls: &[String],
    duration: Duration,
    headers: &[&str],
) -> Result<Vec<WrkResult>> {
    std::thread::scope(|scope| {
        let running: Vec<_> = urls
            .iter()
            .map(|url| scope.spawn(move || run_with(url, duration, CONNECTIONS, headers)))
            .collect();
        running
            .into_iter()
            .map(|load| load.join().expect("wrk thread"))
            .collect()
    })
}

pub fn run(url: &str, duration: Duration) -> Result<WrkResult> {
    run_with(url, duration, CONNECTIONS, &[])
}

/// `run` with `connections` open requests and `headers` (`Name: value`) on every request.
pub fn run_with(
    url: &str,
    duration: Duration,
    connections: u32,
    headers: &[&str],
) -> Result<WrkResult> {
    let mut command = std::process::Command::new("taskset");
    command.args([
        "-c",
        &TOOLS_CPU.to_string(),
        "wrk",
        "-t1",
        &format!("-c{connections}"),
        "--latency",
    ]);
    for header in headers {
        command.arg("-H").arg(header);
    }
    let output = command
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg(url)
        .output()
        .context("running wrk (apt-get install wrk; scripts/setup.sh does)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    // A load whose requests failed (a /call whose call did not go through answers 502) measured
    // something else.
    if !output.status.success()
        || text.contains("Socket errors") && text.contains("timeout")
        || text.contains("Non-2xx or 3xx responses")
    {
        bail!(
            "wrk {url} failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&text).with_context(|| format!("unexpected wrk output: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_latency_output() {
        let out = "Running 10s test @ http://127.0.0.1:1/\n  1 threads and 8 connections\n  Latency Distribution\n     50%  426.00us\n     75%  500.00us\n     90%  1.02ms\n     99%    2.50ms\n  125400 requests in 10.00s, 14.23MB read\nRequests/sec:  12540.12\nTransfer/sec:      1.42MB\n";
        let r = parse(out).unwrap();
        assert_eq!(r.requests, 125_400);
        assert_eq!(r.requests_per_second, 12540.12);
        assert_eq!(r.p50_us, 426.0);
        assert_eq!(r.p99_us, 2500.0);
    }
}
