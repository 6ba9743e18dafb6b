//! What connected traces cost the probes, from the kernel's per-program accounting: the BPF run
//! time per server request with and without an incoming `traceparent`, and per client call (the
//! traced service's `/call` to an untraced copy of it) the floor's bare counting programs on the
//! client points against the agent's client programs, with trace context propagation off and on
//! (on: the programs that also write `traceparent` into the outgoing request). Beside them, what
//! one read of the service's memory costs a BPF program on this host: a bpftrace program on the
//! agent's entry point with `READS` reads of the request against the same program without them.
//! Every configuration runs in every round, in turns whose order alternates from round to round,
//! so the host's drift between rounds falls on all of them alike.
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde::Serialize;

use crate::bpfstats;
use crate::overhead::Scheme;
use crate::procs::{Agent, AgentRun, Peer, ProbeMode, Service, Target};
use crate::stats::Summary;
use crate::wrk::{self, WrkResult};
use crate::Bench;

/// The header of the requests that carry a trace context (the W3C spec's example, the trace of
/// `sink::BENCH_TRACE_ID`).
pub const TRACEPARENT: &str =
    "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// The agent's programs on a server request's start and end.
const SERVER_PROGRAMS: [&str; 2] = ["serve_http_entry", "request_end"];
/// The agent's programs on `net/http.(*Transport).roundTrip`'s entry and RETs.
const CLIENT_PROGRAMS: [&str; 2] = ["client_call_start", "client_call_return"];
/// The same with propagation on, and the programs on the HTTP/1 and HTTP/2 header writes.
const PROPAGATING_CLIENT_PROGRAMS: [&str; 4] = [
    "client_call_start_propagating",
    "client_call_return",
    "client_header_write",
    "client_h2_header_write",
];
/// The floor's counting programs on the same client points (`--probe-mode count`).
const FLOOR_CLIENT_PROGRAMS: [&str; 2] = ["count_client_start", "count_client_return"];

/// Reads of the request in the read-cost program (`Config::Reads`).
pub const READS: u64 = 8;
// `Config::Reads`'s label names the count.
const _: () = assert!(READS == 8);

/// Open requests for the load on `/call`: the fixture's client keeps 2 idle connections per
/// host (net/http's default), so with 2 every call reuses one and no call pays for a connection
/// or a TLS handshake to the callee.
pub const CALL_CONNECTIONS: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Config {
    /// Server requests without a `traceparent` (each span a new root); the agent's server
    /// programs.
    ServerNoTraceparent,
    /// The same requests with a valid `traceparent` (each span joins that trace).
    ServerTraceparent,
    /// Calls made by the traced service; the floor's counting programs on the client points.
    ClientFloor,
    /// The same calls; the agent's client programs, propagation off.
    ClientAgent,
    /// The same calls; propagation on (where the kernel forbids the writes, the same programs in
    /// probe mode `propagation-dry-run`: everything but the write itself).
    ClientPropagation,
    /// Server requests (HTTP only: a read costs the same in both); a bpftrace program on the
    /// agent's entry point of the stripped copy that stores the request's address.
    ReadsNone,
    /// The same program storing the sum of the request's first `READS` words, each read apart
    /// (one `bpf_probe_read_user` each, as the agent reads a Go object).
    Reads,
}

impl Config {
    pub fn label(self) -> &'static str {
        match self {
            Config::ServerNoTraceparent => "without `traceparent` (each span a new root)",
            Config::ServerTraceparent => "with a valid `traceparent` (each span joins its trace)",
            Config::ClientFloor => "floor: counting programs on the client points",
            Config::ClientAgent => "agent: client spans, propagation off",
            Config::ClientPropagation => "agent: client spans, propagation on",
            Config::ReadsNone => "bpftrace on the request's start, no read",
            Config::Reads => "bpftrace on the request's start, 8 reads of the request",
        }
    }

    /// A request's start and end, a call's start and return, and with propagation its header
    /// write.
    fn runs_per_request(self) -> u64 {
        match self {
            Config::ClientPropagation => 3,
            Config::ReadsNone | Config::Reads => 1,
            _ => 2,
        }
    }

    /// The agent's programs measured; none for bpftrace's (all of its programs are).
    fn programs(self) -> &'static [&'static str] {
        match self {
            Config::ServerNoTraceparent | Config::ServerTraceparent => &SERVER_PROGRAMS,
            Config::ClientFloor => &FLOOR_CLIENT_PROGRAMS,
            Config::ClientAgent => &CLIENT_PROGRAMS,
            Config::ClientPropagation => &PROPAGATING_CLIENT_PROGRAMS,
            Config::ReadsNone | Config::Reads => &[],
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TraceCostRun {
    pub scheme: Scheme,
    pub config: Config,
    pub round: usize,
    pub wrk: WrkResult,
    /// Nanoseconds the configuration's programs ran per request (server) or per call (client).
    pub ns_per_request: f64,
    /// How many times they ran per request or call.
    pub runs_per_request: f64,
    /// Propagation on in probe mode `propagation-dry-run`: the kernel forbade the writes.
    pub dry_run: bool,
}

/// Median (min – max) over the rounds of `config`'s ns per request.
pub fn summary(runs: &[TraceCostRun], scheme: Scheme, config: Config) -> Option<Summary> {
    Summary::of(
        runs.iter()
            .filter(|r| r.scheme == scheme && r.config == config)
            .map(|r| r.ns_per_request),
    )
}

/// Median (min – max) over the rounds of `more`'s ns per request minus `less`'s, same round.
pub fn difference(
    runs: &[TraceCostRun],
    scheme: Scheme,
    more: Config,
    less: Config,
) -> Option<Summary> {
    let of = |config: Config| {
        runs.iter()
            .filter(move |r| r.scheme == scheme && r.config == config)
    };
    Summary::of(of(more).filter_map(|m| {
        let l = of(less).find(|l| l.round == m.round)?;
        Some(m.ns_per_request - l.ns_per_request)
    }))
}

/// Median (min – max) over the rounds of one read's ns: (`Reads` − `ReadsNone`) / `READS`.
pub fn read_ns(runs: &[TraceCostRun]) -> Option<Summary> {
    let d = difference(runs, Scheme::Http, Config::Reads, Config::ReadsNone)?;
    let per_read = |ns: f64| ns / READS as f64;
    Some(Summary {
        median: per_read(d.median),
        min: per_read(d.min),
        max: per_read(d.max),
        n: d.n,
    })
}

/// The bpftrace program of `Config::ReadsNone` (`reads` 0) or `Config::Reads` on `probe`, the
/// agent's entry point in the stripped copy (`ServeHTTP(sh, rw, req)`: req in RDI). Both store
/// one value in a map; `BEGIN` prints once every probe is attached.
pub fn read_cost_script(probe: &str, reads: u64) -> String {
    let value = if reads == 0 {
        "reg(\"di\")".to_string()
    } else {
        (0..reads)
            .map(|i| format!("*(uint64*)(reg(\"di\") + {})", i * 8))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    format!("BEGIN {{ printf(\"attached\\n\"); }}\n{probe}\n{{\n  @value = {value};\n}}\n")
}

/// `configs` in round `round`'s order: as given in odd rounds, reversed in even ones.
fn in_turn<const N: usize>(mut configs: [Config; N], round: usize) -> [Config; N] {
    if round.is_multiple_of(2) {
        configs.reverse();
    }
    configs
}

/// Starts the agent for `config`'s programs; true when it runs propagation as a dry run.
fn start_agent(
    bench: &Bench,
    config: Config,
    service: &Service,
    dir: &Path,
) -> Result<(Agent, bool)> {
    let run = AgentRun {
        probe_mode: match config {
            Config::ClientFloor => ProbeMode::Count,
            _ => ProbeMode::Full,
        },
        plugins: None,
        otlp_endpoint: Some(bench.sink.endpoint.clone()),
        target: Target::Pid(service.pid),
        metrics_port: None,
        propagation_off: config == Config::ClientAgent,
    };
    if config == Config::ClientPropagation {
        return Agent::start_propagating(&bench.agent, &run, dir);
    }
    let mut agent = Agent::start(&bench.agent, &run, dir)?;
    agent.wait_tracing(Duration::from_secs(60))?;
    Ok((agent, false))
}

/// Runs `load` with the kernel's accounting on; the programs `totals` sums must have run at
/// least `config.runs_per_request()` times per request.
fn accounted(
    totals: impl Fn() -> Result<bpfstats::ProgramTotals>,
    scheme: Scheme,
    config: Config,
    round: usize,
    dry_run: bool,
    load: impl FnOnce() -> Result<WrkResult>,
) -> Result<TraceCostRun> {
    let (wrk, ran) = bpfstats::with_accounting(|| {
        let before = totals()?;
        let wrk = load()?;
        Ok((wrk, totals()?.since(before)))
    })?;
    ensure!(
        wrk.requests > 0 && ran.run_count >= config.runs_per_request() * wrk.requests,
        "{} {config:?}: the programs ran {} times for {} requests",
        scheme.label(),
        ran.run_count,
        wrk.requests
    );
    let run = TraceCostRun {
        scheme,
        config,
        round,
        wrk,
        ns_per_request: ran.run_time_ns as f64 / wrk.requests as f64,
        runs_per_request: ran.run_count as f64 / wrk.requests as f64,
        dry_run,
    };
    eprintln!(
        "trace cost: round {round} {} {:<58} {:>9.0} req/s {:>6.0} ns/request ({:.2} runs)",
        scheme.label(),
        config.label(),
        wrk.requests_per_second,
        run.ns_per_request,
        run.runs_per_request
    );
    Ok(run)
}

/// The totals of `config`'s programs among those `agent` holds.
fn agent_programs(agent: &Agent, config: Config) -> Result<bpfstats::ProgramTotals> {
    bpfstats::named_programs_of(agent.pid(), config.programs())
}

/// Stops `agent`; it must not have lost events when the run requires keeping pace.
fn stop(agent: Agent, what: &str, require_keeping_pace: bool) -> Result<()> {
    let stats = agent.stop()?;
    let lost = stats.get("events_lost").copied().unwrap_or(0);
    ensure!(
        lost == 0 || !require_keeping_pace,
        "{what}: {lost} events lost: {stats:?}"
    );
    Ok(())
}

fn url(service: &Service, scheme: Scheme) -> String {
    match scheme {
        Scheme::Http => format!("http://127.0.0.1:{}/", service.http_port),
        Scheme::Https => format!("https://127.0.0.1:{}/", service.https_port),
    }
}

pub fn measure(bench: &Bench) -> Result<Vec<TraceCostRun>> {
    let s = &bench.settings;
    let service = Service::start(&bench.server)?;
    // The callee: its own file, and the agent follows the traced service's pid only.
    let callee = Service::start_copy(&bench.server, &bench.work.path().join("service-called"))?;
    let peer_service = Service::start(&bench.peer_server)?;
    let mut runs = Vec::new();
    for round in 1..=s.rounds {
        // Server requests: one agent, both header configurations in turn.
        let dir = tempfile::tempdir_in(bench.work.path())?;
        let (agent, _) = start_agent(bench, Config::ServerNoTraceparent, &service, dir.path())?;
        let joined_before = bench.sink.spans_in_bench_trace();
        let mut with_traceparent = 0;
        for scheme in [Scheme::Http, Scheme::Https] {
            let url = url(&service, scheme);
            wrk::run(&url, s.warmup)?;
            let pair = [Config::ServerNoTraceparent, Config::ServerTraceparent];
            for config in in_turn(pair, round) {
                let headers: &[&str] = match config {
                    Config::ServerTraceparent => &[TRACEPARENT],
                    _ => &[],
                };
                let programs = || agent_programs(&agent, config);
                let run = accounted(programs, scheme, config, round, false, || {
                    wrk::run_with(&url, s.probe_time, wrk::CONNECTIONS, headers)
                })?;
                if config == Config::ServerTraceparent {
                    with_traceparent += run.wrk.requests;
                }
                runs.push(run);
            }
        }
        stop(agent, "server requests", s.require_keeping_pace)?;
        // Every request that carried the header became a span of its trace (the smoke run's
        // debug build may drop some under load, but not all).
        let joined = bench.sink.spans_in_bench_trace() - joined_before;
        ensure!(
            joined >= with_traceparent || !s.require_keeping_pace && joined > 0,
            "{joined} spans joined the incoming trace of {with_traceparent} requests with its \
             traceparent"
        );
        // Client calls: the floor's agent and the agent's two, in turn.
        let clients = [
            Config::ClientFloor,
            Config::ClientAgent,
            Config::ClientPropagation,
        ];
        for config in in_turn(clients, round) {
            let dir = tempfile::tempdir_in(bench.work.path())?;
            let (agent, dry_run) = start_agent(bench, config, &service, dir.path())?;
            for scheme in [Scheme::Http, Scheme::Https] {
                let url = format!(
                    "http://127.0.0.1:{}/call?url={}",
                    service.http_port,
                    url(&callee, scheme)
                );
                wrk::run_with(&url, s.warmup, CALL_CONNECTIONS, &[])?;
                let programs = || agent_programs(&agent, config);
                let run = accounted(programs, scheme, config, round, dry_run, || {
                    wrk::run_with(&url, s.probe_time, CALL_CONNECTIONS, &[])
                })
                .context("client calls")?;
                runs.push(run);
            }
            stop(agent, config.label(), s.require_keeping_pace)?;
        }
        // One read's price: bpftrace on the stripped copy, without the reads and with them.
        for config in in_turn([Config::ReadsNone, Config::Reads], round) {
            let dir = tempfile::tempdir_in(bench.work.path())?;
            let reads = if config == Config::Reads { READS } else { 0 };
            let script = dir.path().join("reads.bt");
            std::fs::write(&script, read_cost_script(&bench.peer_entry, reads))?;
            let peer = Peer::start(&script, dir.path())?;
            peer.wait_printed("attached", dir.path(), || {})?;
            let url = url(&peer_service, Scheme::Http);
            wrk::run(&url, s.warmup)?;
            let programs = || bpfstats::programs_of(peer.pid());
            let run = accounted(programs, Scheme::Http, config, round, false, || {
                wrk::run_with(&url, s.probe_time, wrk::CONNECTIONS, &[])
            })
            .context("the price of a read")?;
            runs.push(run);
            peer.stop();
        }
    }
    Ok(runs)
}

/// A measured-looking run of `config` in `round`, `ns` per request, for tests of the summaries.
#[cfg(test)]
pub(crate) fn sample_run(round: usize, config: Config, ns: f64) -> TraceCostRun {
    TraceCostRun {
        scheme: Scheme::Http,
        config,
        round,
        wrk: WrkResult {
            requests_per_second: 10_000.0,
            requests: 20_000,
            p50_us: 100.0,
            p99_us: 200.0,
        },
        ns_per_request: ns,
        runs_per_request: 2.0,
        dry_run: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_pair_configurations_of_the_same_round() {
        // Round 2 ran 20% slower for both: the difference moves less than either figure.
        let runs = [
            sample_run(1, Config::ClientFloor, 100.0),
            sample_run(1, Config::ClientAgent, 600.0),
            sample_run(2, Config::ClientAgent, 720.0),
            sample_run(2, Config::ClientFloor, 120.0),
            sample_run(3, Config::ClientAgent, 650.0),
        ];
        let d = difference(
            &runs,
            Scheme::Http,
            Config::ClientAgent,
            Config::ClientFloor,
        )
        .unwrap();
        assert_eq!((d.min, d.max, d.n), (500.0, 600.0, 2));
        let agent = summary(&runs, Scheme::Http, Config::ClientAgent).unwrap();
        assert_eq!((agent.median, agent.n), (650.0, 3));
        assert!(summary(&runs, Scheme::Https, Config::ClientAgent).is_none());
    }

    #[test]
    fn a_read_is_the_difference_of_the_two_programs_over_the_reads() {
        let runs = [
            sample_run(1, Config::ReadsNone, 250.0),
            sample_run(1, Config::Reads, 250.0 + 8.0 * 170.0),
            sample_run(2, Config::Reads, 300.0 + 8.0 * 150.0),
            sample_run(2, Config::ReadsNone, 300.0),
        ];
        let read = read_ns(&runs).unwrap();
        assert_eq!(
            (read.min, read.median, read.max, read.n),
            (150.0, 160.0, 170.0, 2)
        );
        assert!(read_ns(&runs[..1]).is_none());
    }

    #[test]
    fn the_read_cost_programs_differ_only_in_the_reads() {
        let probe = "uprobe:/tmp/s:0x1e0";
        let none = read_cost_script(probe, 0);
        let two = read_cost_script(probe, 2);
        assert_eq!(
            none,
            "BEGIN { printf(\"attached\\n\"); }\nuprobe:/tmp/s:0x1e0\n{\n  @value = reg(\"di\");\n}\n"
        );
        assert_eq!(
            two,
            none.replace(
                "reg(\"di\");",
                "*(uint64*)(reg(\"di\") + 0) + *(uint64*)(reg(\"di\") + 8);"
            )
        );
    }

    #[test]
    fn configurations_take_turns_from_round_to_round() {
        let pair = [Config::ServerNoTraceparent, Config::ServerTraceparent];
        assert_eq!(in_turn(pair, 1), pair);
        assert_eq!(
            in_turn(pair, 2),
            [Config::ServerTraceparent, Config::ServerNoTraceparent]
        );
    }
}
