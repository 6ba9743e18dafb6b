//! `docs/benchmarks.md` and its charts, from one run's results.
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::hits::{ProbeHits, Requests};
use crate::overhead::{Mode, OverheadRun, Scheme};
use crate::plot::{self, Target};
use crate::stats::Summary;
use crate::trace_cost::{self, Config, TraceCostRun};
use crate::Results;

/// CPU time per request the instrumentation added to the service: over the uninstrumented copy
/// loaded at the same time (for "none", the difference between two uninstrumented copies).
fn added_us(run: &OverheadRun) -> f64 {
    run.service_cpu_us_per_request - run.baseline_cpu_us_per_request
}

/// Per-mode summaries of one scheme's runs.
pub struct ModeFigures {
    pub mode: Mode,
    pub rps: Option<Summary>,
    pub cpu_us: Option<Summary>,
    pub busy: Option<Summary>,
    pub p50: Option<Summary>,
    pub p99: Option<Summary>,
    pub added_us: Option<Summary>,
    /// Requests/s over the uninstrumented copy's in the same seconds.
    pub vs_copy_rps: Option<Summary>,
    pub copy_cpu_us: Option<Summary>,
    /// Nanoseconds the instrumentation's BPF programs ran per request.
    pub probe_ns: Option<Summary>,
    /// Added latency divided by the floor's, same round.
    pub vs_floor: Option<Summary>,
    /// The same ratio with the difference to the floor taken from the kernel's accounting of
    /// the probes' run time instead of from CPU time (see `ratio_from_probe_time`).
    pub vs_floor_probe_time: Option<Summary>,
}

/// `run`'s added latency over the floor's, with the floor's added CPU time of the same round as
/// the base and the extra over it taken from the probes' run time:
/// `(floor added + (probe ns - floor probe ns)) / floor added`.
///
/// Every configuration but (a) and (b′) traps on the same entry and request-end offsets as the
/// floor, so what one costs above the floor is what its BPF programs run longer (plus the cache
/// lines they take from the service, which this leaves out: it is a lower bound). The CPU-time
/// ratio divides two differences of CPU time, each with the noise of its pair of copies; this one
/// has that noise only in its divisor.
fn ratio_from_probe_time(run: &OverheadRun, floor: &OverheadRun) -> Option<f64> {
    let floor_added_us = added_us(floor);
    let extra_us = (run.probe_ns_per_request? - floor.probe_ns_per_request?) / 1000.0;
    (floor_added_us > 0.0).then(|| (floor_added_us + extra_us) / floor_added_us)
}

pub fn mode_figures(runs: &[OverheadRun], scheme: Scheme) -> Vec<ModeFigures> {
    Mode::ALL
        .iter()
        .map(|&mode| {
            let of = |mode: Mode| -> Vec<&OverheadRun> {
                runs.iter()
                    .filter(|r| r.scheme == scheme && r.mode == mode)
                    .collect()
            };
            let mine = of(mode);
            let floor = of(Mode::Floor);
            let with_floor =
                |ratio: &dyn Fn(&OverheadRun, &OverheadRun) -> Option<f64>| {
                    (mode != Mode::None)
                        .then(|| {
                            Summary::of(mine.iter().filter_map(|r| {
                                ratio(r, floor.iter().find(|f| f.round == r.round)?)
                            }))
                        })
                        .flatten()
                };
            let vs_floor = with_floor(&|r, f| Some(added_us(r) / added_us(f)));
            let vs_floor_probe_time = with_floor(&|r, f| ratio_from_probe_time(r, f));
            ModeFigures {
                mode,
                rps: Summary::of(mine.iter().map(|r| r.wrk.requests_per_second)),
                cpu_us: Summary::of(mine.iter().map(|r| r.service_cpu_us_per_request)),
                busy: Summary::of(mine.iter().map(|r| r.service_busy_percent)),
                p50: Summary::of(mine.iter().map(|r| r.wrk.p50_us)),
                p99: Summary::of(mine.iter().map(|r| r.wrk.p99_us)),
                added_us: Summary::of(mine.iter().map(|r| added_us(r))),
                vs_copy_rps: Summary::of(
                    mine.iter()
                        .map(|r| r.wrk.requests_per_second / r.baseline_requests_per_second),
                ),
                copy_cpu_us: Summary::of(mine.iter().map(|r| r.baseline_cpu_us_per_request)),
                probe_ns: Summary::of(mine.iter().filter_map(|r| r.probe_ns_per_request)),
                vs_floor,
                vs_floor_probe_time,
            }
        })
        .collect()
}

fn range(s: Option<Summary>, decimals: usize) -> String {
    match s {
        Some(s) if s.n > 1 => format!(
            "{:.d$} ({:.d$} – {:.d$})",
            s.median,
            s.min,
            s.max,
            d = decimals
        ),
        Some(s) => format!("{:.d$}", s.median, d = decimals),
        None => "–".into(),
    }
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The pipeline's throughput targets: the stage, what it is, spans/s.
const PIPELINE_TARGETS: [(crate::replay::Stage, &str, f64); 1] = [(
    crate::replay::Stage::Plugins,
    "without export (decode + 3 plugins)",
    1e6,
)];

/// The most BPF run time a server request may take, its `traceparent` read included, in ns.
const SERVER_BPF_TARGETS: [(Scheme, f64); 2] = [(Scheme::Http, 1300.0), (Scheme::Https, 1500.0)];

/// Reads of the service's memory the agent's server programs make for a request with a
/// `traceparent`, as section 3 measures it: at the start the request, its header map, the map's
/// group holding the header, the key, the value slice and the value's text; at the end the
/// request, the request line, the host, the remote address, the route and the response writer.
const SERVER_READS_WITH_TRACEPARENT: u64 = 12;

/// A server BPF-time target judged: the medians with and without an incoming `traceparent`
/// (section 3), judged on the one with it.
struct ServerBpfTime {
    with_traceparent: Summary,
    without: Option<Summary>,
    met: bool,
}

fn server_bpf_time(runs: &[TraceCostRun], scheme: Scheme, limit_ns: f64) -> Option<ServerBpfTime> {
    let with_traceparent = trace_cost::summary(runs, scheme, Config::ServerTraceparent)?;
    Some(ServerBpfTime {
        with_traceparent,
        without: trace_cost::summary(runs, scheme, Config::ServerNoTraceparent),
        met: with_traceparent.median <= limit_ns,
    })
}

/// Probe hits per request at their highest over the protocols: of server requests (every row,
/// the server side of a request that calls out included) and of client calls.
struct HitsPerRequest {
    server: f64,
    client: f64,
    /// The most start and return hits of a call, its header write left out.
    start_return: f64,
    header_writes: f64,
}

fn most_hits(hits: &[ProbeHits]) -> Option<HitsPerRequest> {
    let calls = || hits.iter().filter(|h| h.requests_do == Requests::CallsOut);
    calls().next()?;
    Some(HitsPerRequest {
        server: hits
            .iter()
            .map(ProbeHits::server_hits_per_request)
            .fold(0.0, f64::max),
        client: calls()
            .map(ProbeHits::client_hits_per_request)
            .fold(0.0, f64::max),
        start_return: calls()
            .map(ProbeHits::start_return_hits_per_request)
            .fold(0.0, f64::max),
        header_writes: calls()
            .map(ProbeHits::header_writes_per_request)
            .fold(0.0, f64::max),
    })
}

fn instructions_per_span(r: &Results, stage: crate::replay::Stage) -> Option<f64> {
    r.instructions
        .iter()
        .find(|c| c.stage == stage)
        .map(|c| c.per_span())
}

/// What a throughput target means in instructions on the host of the run.
struct InstructionBudget {
    per_span: f64,
    /// Instructions per second the host ran the stage at: its spans/s times its instructions per
    /// span.
    host_rate: f64,
    /// Instructions per span at which that rate gives the target.
    allowed_per_span: f64,
}

fn instruction_budget(
    r: &Results,
    stage: crate::replay::Stage,
    spans_per_second: f64,
    target: f64,
) -> Option<InstructionBudget> {
    budget_of(instructions_per_span(r, stage)?, spans_per_second, target)
}

fn budget_of(per_span: f64, spans_per_second: f64, target: f64) -> Option<InstructionBudget> {
    (spans_per_second > 0.0).then(|| {
        let host_rate = spans_per_second * per_span;
        InstructionBudget {
            per_span,
            host_rate,
            allowed_per_span: host_rate / target,
        }
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

/// How far apart two uninstrumented copies of the service were in a scheme's rounds: row (a)'s
/// added µs per request, which is zero on a quiet host, at its furthest from zero.
fn method_spread_us(figs: &[ModeFigures]) -> Option<f64> {
    let none = figs.iter().find(|f| f.mode == Mode::None)?.added_us?;
    Some(none.min.abs().max(none.max.abs()))
}

/// `verdict(ok)`, unless the run was too noisy to tell.
fn overhead_verdict(ok: bool, noisy: bool) -> &'static str {
    if noisy {
        "not judged: within this run's noise (row (a) of section 1)"
    } else {
        verdict(ok)
    }
}

pub struct Invocation {
    pub command: String,
    pub date: String,
}

/// Writes the markdown to `out` and the charts next to it, in `out`'s stem directory
/// (`docs/benchmarks/`).
pub fn write(results: &Results, out: &Path, invocation: &Invocation) -> Result<()> {
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("benchmarks");
    let charts = out.with_file_name(stem);
    std::fs::create_dir_all(&charts)?;
    let chart = |name: &str| format!("{stem}/{name}");
    let mut md = String::new();
    let r = results;
    let s = &r.settings;

    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "What http-autoinstrument costs a traced Go service and what its pipeline can carry, \
         every configuration measured side by side in one run. Generated by `{}` on {}; \
         the raw figures are in [`{stem}/results.json`]({stem}/results.json).\n",
        invocation.command, invocation.date
    );
    let _ = writeln!(md, "## Machine\n\n| | |\n|---|---|");
    let m = &r.machine;
    let _ = writeln!(md, "| CPU | {} |", m.cpu);
    let _ = writeln!(md, "| cores | {} |", m.cores);
    let _ = writeln!(md, "| memory | {:.1} GiB |", m.memory_gib);
    let _ = writeln!(md, "| kernel | {} |", m.kernel);
    let _ = writeln!(md, "| virtualization | {} |", m.virtualization);
    let _ = writeln!(
        md,
        "| kernel return mitigations | {} |",
        m.return_mitigations
    );
    for (tool, version) in &m.tools {
        let _ = writeln!(md, "| {tool} | {version} |");
    }
    let _ = writeln!(
        md,
        "\nThe traced service is the end-to-end test fixture (`host/tests/fixtures/goserver`, \
         stdlib net/http, answering `hello`) on CPU 0 with `GOMAXPROCS=1`, beside an \
         uninstrumented copy of it on the same core; the load generators, the agent, the OTLP \
         receiver and the peer share CPU 1. Per configuration: {} rounds, {} s of `wrk -t1 -c{}` \
         on each copy at once after a {} s warm-up.\n",
        s.rounds,
        s.duration.as_secs(),
        crate::wrk::CONNECTIONS,
        s.warmup.as_secs()
    );

    // Targets first, so a reader sees at once what holds.
    let http = mode_figures(&r.overhead, Scheme::Http);
    let https = mode_figures(&r.overhead, Scheme::Https);
    let added = |figs: &[ModeFigures], mode: Mode| -> Option<Summary> {
        figs.iter().find(|f| f.mode == mode)?.added_us
    };
    let replay_runs = |stage: crate::replay::Stage| {
        Summary::of(
            r.replay
                .iter()
                .filter(|x| x.stage == stage)
                .map(|x| x.spans_per_second),
        )
    };
    let replay = |stage| replay_runs(stage).map_or(0.0, |s| s.median);
    let rss_with_plugins = r
        .resources
        .iter()
        .filter(|x| x.plugins)
        .map(|x| x.rss_mib)
        .fold(0.0f64, f64::max);
    let _ = writeln!(md, "## Targets\n");
    let _ = writeln!(md, "| target | measured | |\n|---|---|---|");
    for (scheme, limit) in SERVER_BPF_TARGETS {
        if let Some(t) = server_bpf_time(&r.trace_cost, scheme, limit) {
            let _ = writeln!(
                md,
                "| {}: BPF run time per server request, `traceparent` read included, ≤ {} ns | {:.0} ns with an incoming `traceparent`, {} without (median, section 3; kernel accounting){} | {} |",
                scheme.label(),
                thousands(limit),
                t.with_traceparent.median,
                t.without.map_or("–".into(), |w| format!("{:.0} ns", w.median)),
                trace_cost::read_ns(&r.trace_cost).map_or(String::new(), |read| format!(
                    "; its {SERVER_READS_WITH_TRACEPARENT} reads of the service's memory alone \
                     take {:.0} ns at this host's {:.0} ns a read (section 3)",
                    read.median * SERVER_READS_WITH_TRACEPARENT as f64,
                    read.median
                )),
                verdict(t.met)
            );
        }
    }
    for (scheme, figs) in [(Scheme::Http, &http), (Scheme::Https, &https)] {
        // The peer is far enough above the agent to be told apart unless their difference is
        // within the method's spread.
        let spread = method_spread_us(figs).unwrap_or(0.0);
        for mode in [Mode::Agent, Mode::AgentPlugins] {
            if let (Some(a), Some(e)) = (added(figs, mode), added(figs, Mode::Bpftrace)) {
                let _ = writeln!(
                    md,
                    "| {} {}: added time per request below the bpftrace peer's | {:.1} µs vs {:.1} µs per request (median, section 1) | {} |",
                    scheme.label(),
                    mode.label(),
                    a.median,
                    e.median,
                    overhead_verdict(a.median < e.median, (e.median - a.median).abs() <= spread)
                );
            }
        }
    }
    for (stage, what, target) in PIPELINE_TARGETS {
        let rate = replay(stage);
        let _ = writeln!(
            md,
            "| pipeline {what} ≥ {} spans/s | {} spans/s (median){} | {} |",
            thousands(target),
            thousands(rate),
            instruction_budget(r, stage, rate, target).map_or(String::new(), |b| format!(
                "; {} instructions per span, where this host's speed during the run allowed {}",
                thousands(b.per_span),
                thousands(b.allowed_per_span)
            )),
            verdict(rate >= target)
        );
    }
    if let Some(h) = most_hits(&r.probe_hits) {
        let _ = writeln!(
            md,
            "| probe hits: 2 per server request, at most 3 per client call with propagation on (one of them the header write) | at most {:.2} per server request and {:.2} per client call ({:.2} header writes) over the protocols (section 2) | {} |",
            h.server,
            h.client,
            h.header_writes,
            verdict(h.server <= 2.0 && h.client <= 3.0 && h.start_return <= 2.0)
        );
    }
    let _ = writeln!(
        md,
        "| agent RSS ≤ 64 MiB with the three plugins | {:.1} MiB (highest steady reading) | {} |\n",
        rss_with_plugins,
        verdict(rss_with_plugins <= 64.0)
    );

    // 1. Overhead
    let _ = writeln!(
        md,
        "## 1. Overhead on the traced service\n\n\
         Each configuration runs beside an uninstrumented copy of the service on the same core, \
         both under wrk over the same seconds: the host's speed here drifts between measurements \
         by more than the instrumentation adds (measured one after the other, the uninstrumented \
         service alone moved 15-20 µs per request from round to round), and both copies see the \
         same drift. **busy** is the service's CPU time over the wall time (~50%: the copies \
         share the core). **Service CPU per request** is the CPU time (user + \
         system, from /proc) the service used divided by the requests it served; uprobe traps \
         and the probes run in the service's own context, so this is where instrumentation shows. \
         **Added µs/request** is that minus the copy's over the same seconds, the latency each \
         request gains on an uncontended core; for (a) both copies are uninstrumented, so its \
         row is the method's own spread. **vs copy** is requests/s over the copy's. **vs floor \
         (CPU)** divides the added µs by the floor's, same round. **Probe ns/request** is how \
         long the instrumentation's BPF programs ran per request, from the kernel's own accounting \
         (`kernel.bpf_stats_enabled`, switched on for {} s of extra load after each measurement): \
         above the floor's it is what the agent's probes themselves add (the rest of the added \
         time is the traps, which the floor pays too, and cache effects). **vs floor (probe \
         time)**: the floor's added µs plus the probe \
         ns/request above the floor's, over the floor's added µs, same round (every instrumented \
         configuration but (b′) traps on the same offsets; it leaves out the cache lines the \
         programs take from the service, a lower bound). Values are median (min – max) over the \
         rounds.\n\n\
         - (b) floor: the agent's `--probe-mode count`, one counting program on the same entry and \
         request-end offsets as (c), nothing read or sent: the price of the uprobe traps alone. \
         The entry probe sits on the conditional jump of ServeHTTP's stack check, the request-end \
         probe on that of the function net/http calls once the handler has returned (HTTP/1's \
         `finishRequest`, HTTP/2's `handlerDone`): the kernel emulates both jumps, so each hit is \
         one trap, where a probe on a RET also single-steps the instruction out of line.\n\
         - (b′) as (b) with the request-end probe on ServeHTTP's RET instead \
         (`--probe-mode count-on-rets`), where every configuration had it before 2026-12-01: \
         what the placement saves.\n\
         - (c′) the agent's probes without reading the traced process \
         (`--probe-mode bookkeeping`): the clock, the in-flight table and the ring-buffer record, \
         spans without HTTP fields. Its probe ns/request splits (c)'s into what running the \
         probes at all costs and what reading the request and the response adds.\n\
         - (c) the agent as shipped, spans exported over OTLP http/protobuf to a local receiver.\n\
         - (d) as (c) with `filter`, `redact` and `route-template` (the Rust example plugins) in \
         the chain.\n\
         - (e) `bpftrace` with a script the benchmark writes from the same inspection: the same \
         entry and request-end probes keyed by goroutine, printing method, target and duration per request. \
         Debian's bpftrace {} refuses `function+offset` probes (built without libbfd) but takes raw \
         file offsets in a binary without symbols, so it traces a stripped copy of the same \
         executable (same code, same offsets).\n",
        s.probe_time.as_secs(),
        r.machine
            .tools
            .iter()
            .find(|t| t.0 == "bpftrace")
            .map_or("", |t| t.1.as_str())
    );
    for (scheme, figs) in [(Scheme::Http, &http), (Scheme::Https, &https)] {
        let _ = writeln!(
            md,
            "### {}\n\n| configuration | requests/s | vs copy | busy % | service CPU µs/request | copy's µs/request | p50 µs | p99 µs | added µs/request | vs floor (CPU) | probe ns/request | vs floor (probe time) |\n|---|---|---|---|---|---|---|---|---|---|---|---|",
            scheme.label()
        );
        for f in figs.iter() {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                f.mode.label(),
                range(f.rps, 0),
                range(f.vs_copy_rps, 2),
                range(f.busy, 0),
                range(f.cpu_us, 1),
                range(f.copy_cpu_us, 1),
                range(f.p50, 0),
                range(f.p99, 0),
                range(f.added_us, 1),
                range(f.vs_floor, 2),
                range(f.probe_ns, 0),
                range(f.vs_floor_probe_time, 2)
            );
        }
        md.push('\n');
    }
    for (scheme, figs) in [(Scheme::Http, &http), (Scheme::Https, &https)] {
        let probe_ns = |mode: Mode| {
            figs.iter()
                .find(|f| f.mode == mode)?
                .probe_ns
                .map(|s| s.median)
        };
        if let (Some(floor), Some(bookkeeping), Some(agent)) = (
            probe_ns(Mode::Floor),
            probe_ns(Mode::Bookkeeping),
            probe_ns(Mode::Agent),
        ) {
            let _ = writeln!(
                md,
                "{}: of the agent's {:.0} ns of BPF run time per request (medians), {:.0} ns is \
                 two programs running at all (the floor's counters), {:.0} ns their bookkeeping \
                 (two clock reads, the in-flight table, the ring-buffer record) and {:.0} ns \
                 reading the request and the response out of the service (one copy per Go \
                 object: the request, its strings, the header map, the response writer).\n",
                scheme.label(),
                agent,
                floor,
                bookkeeping - floor,
                agent - bookkeeping
            );
        }
    }
    let instrumented: Vec<Mode> = Mode::ALL[1..].to_vec();
    let categories: Vec<String> = instrumented.iter().map(|m| m.short().to_string()).collect();
    let per =
        |figs: &[ModeFigures], pick: fn(&ModeFigures) -> Option<Summary>| -> Vec<Option<Summary>> {
            instrumented
                .iter()
                .map(|&m| figs.iter().find(|f| f.mode == m).and_then(pick))
                .collect()
        };
    plot::grouped_bars(
        &charts.join("overhead-added-latency.svg"),
        "CPU time added to the service per request",
        "µs per request",
        &categories,
        &[
            ("HTTP".into(), per(&http, |f| f.added_us)),
            ("HTTPS".into(), per(&https, |f| f.added_us)),
        ],
        &[],
    )?;
    let all: Vec<String> = Mode::ALL.iter().map(|m| m.short().to_string()).collect();
    let every = |figs: &[ModeFigures],
                 pick: fn(&ModeFigures) -> Option<Summary>|
     -> Vec<Option<Summary>> { figs.iter().map(pick).collect() };
    plot::grouped_bars(
        &charts.join("overhead-latency.svg"),
        &format!(
            "Request latency under saturating load (wrk, {} connections)",
            crate::wrk::CONNECTIONS
        ),
        "µs",
        &all,
        &[
            ("HTTP p50".into(), every(&http, |f| f.p50)),
            ("HTTP p99".into(), every(&http, |f| f.p99)),
            ("HTTPS p50".into(), every(&https, |f| f.p50)),
            ("HTTPS p99".into(), every(&https, |f| f.p99)),
        ],
        &[],
    )?;
    let _ = writeln!(
        md,
        "![added latency]({})\n\n![latency]({})\n",
        chart("overhead-added-latency.svg"),
        chart("overhead-latency.svg")
    );
    let _ = writeln!(md, "What each instrumented run reported (last round):\n");
    for run in r
        .overhead
        .iter()
        .filter(|x| x.round == s.rounds && x.mode != Mode::None)
    {
        let _ = writeln!(
            md,
            "- {} {}: {} for {} requests measured",
            run.scheme.label(),
            run.mode.label(),
            run.check,
            run.wrk.requests
        );
    }
    md.push('\n');

    // 2. Probe hits
    let _ = writeln!(
        md,
        "## 2. Probe hits per request\n\n\
         Counted by the probes' own kernel counters (`/metrics`) around {} requests on one \
         connection per protocol (curl). The server rows: requests the traced service answers, \
         in each protocol it speaks. The client rows: requests over HTTP/1.1 to the traced \
         service's `/call?url=…`, which calls a second, untraced copy of the fixture once per \
         request with net/http's client in the protocol of the row (`proto=h2` and an https URL \
         for HTTP/2), on the handler's goroutine with a context derived from the request's; each \
         such request is a server span and a client span. Trace context propagation is on: \
         a call's hits are its start, its return and the write of `traceparent` into its \
         header bytes{}.\n\n\
         | requests | protocol | requests | entry hits | request-end hits | server hits per request | client start hits | client return hits | header-write hits | client hits per call | events | spans |\n|---|---|---|---|---|---|---|---|---|---|---|---|",
        s.hit_requests,
        if r.probe_hits.iter().any(|h| h.dry_run) {
            " (this host's kernel forbids the write, so the agent ran in \
             `--probe-mode propagation-dry-run`: the same programs and probe points, without the \
             write itself)"
        } else {
            ""
        }
    );
    for h in &r.probe_hits {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} |",
            h.requests_do.label(),
            h.protocol,
            h.requests,
            h.entry_hits,
            h.request_end_hits,
            h.server_hits_per_request(),
            h.client_start_hits,
            h.client_return_hits,
            h.header_write_hits,
            match h.requests_do {
                Requests::CallsOut => format!("{:.2}", h.client_hits_per_request()),
                Requests::Served => "–".into(),
            },
            h.events,
            h.spans
        );
    }
    md.push('\n');

    // 3. Trace context and client calls
    let _ = writeln!(
        md,
        "## 3. BPF run time of trace context and client calls\n\n\
         How long the agent's programs run, from the kernel's accounting per program (aya's \
         `loaded_programs`: the run time and run count of each program the agent holds, by \
         name), with `kernel.bpf_stats_enabled` on only during the measured loads. In each of {} \
         rounds, every configuration below runs {} s of load after a {} s warm-up, in turns whose \
         order alternates from round to round; values are median (min – max) over the rounds, \
         differences taken within a round.\n\n\
         - Server requests: `wrk -t1 -c{}` on the traced service (`/`, answering `hello`), \
         without and with `-H '{}'`. The figure is the time of the server programs \
         (`serve_http_entry` on the request's start, `request_end` on its end) per request, \
         which reads the `traceparent` header in both (the header walk looks for it on every \
         request) and parses it when there is one. Every request that carried it must come out \
         as a span of its trace at the OTLP receiver.\n\
         - Client calls: `wrk -t1 -c{}` on the traced service's `/call?url=…` of the untraced copy \
         (HTTP, or HTTPS over HTTP/1.1; the client keeps 2 idle connections per host, so every \
         call reuses one), one call per request. The figure is the time of the programs on the \
         client points, `net/http.(*Transport).roundTrip`'s entry and RETs, per call: the floor's \
         bare counting programs (`--probe-mode count`), and the agent's: at the entry, the walk of \
         the request's context chain to the server request it belongs to (its parent); at the \
         return, the response's status and protocol or the error, the request's method and URL, \
         and the client span's event. With propagation on, the entry also makes the client \
         span's context (and replaces a proxy's copied `traceparent` by it) and a program on the \
         header write (`(*Request).write`'s call of `Header.writeSubset` for HTTP/1.x, \
         `(*ClientConn).writeHeaders`'s call of `(*bufio.Writer).Flush` for HTTP/2) adds \
         `traceparent` to the request's header bytes.\n",
        s.rounds,
        s.probe_time.as_secs(),
        s.warmup.as_secs(),
        crate::wrk::CONNECTIONS,
        trace_cost::TRACEPARENT,
        trace_cost::CALL_CONNECTIONS,
    );
    let tc = &r.trace_cost;
    let cell = |scheme: Scheme, config: Config| range(trace_cost::summary(tc, scheme, config), 0);
    let diff = |scheme: Scheme, more: Config, less: Config| {
        range(trace_cost::difference(tc, scheme, more, less), 0)
    };
    // Configurations as rows, HTTP and HTTPS side by side, then what one adds to another.
    let mut table =
        |heading: &str, unit: &str, configs: &[Config], adds: &[(Config, Config, &str)]| {
            let _ = writeln!(
                md,
                "### {heading}\n\n| | HTTP ns/{unit} | HTTPS ns/{unit} |\n|---|---|---|"
            );
            for &config in configs {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    config.label(),
                    cell(Scheme::Http, config),
                    cell(Scheme::Https, config)
                );
            }
            for &(more, less, what) in adds {
                let _ = writeln!(
                    md,
                    "| {what} | {} | {} |",
                    diff(Scheme::Http, more, less),
                    diff(Scheme::Https, more, less)
                );
            }
            md.push('\n');
        };
    table(
        "Server requests",
        "request",
        &[Config::ServerNoTraceparent, Config::ServerTraceparent],
        &[(
            Config::ServerTraceparent,
            Config::ServerNoTraceparent,
            "what an incoming `traceparent` adds (with − without)",
        )],
    );
    table(
        "Client calls",
        "call",
        &[
            Config::ClientFloor,
            Config::ClientAgent,
            Config::ClientPropagation,
        ],
        &[
            (
                Config::ClientAgent,
                Config::ClientFloor,
                "what the agent adds to the floor (propagation off − floor)",
            ),
            (
                Config::ClientPropagation,
                Config::ClientAgent,
                "what propagation adds (on − off)",
            ),
        ],
    );
    if let Some(read) = trace_cost::read_ns(tc) {
        let _ = writeln!(
            md,
            "### A read of the service's memory\n\n\
             What one `bpf_probe_read_user` costs a program on this host, the helper every read of \
             a traced process goes through: `bpftrace` on the stripped copy of the service at the \
             agent's entry point, storing the request's address, against the same program \
             storing the sum of the request's first {reads} words, each read apart. Same load and \
             rounds as above, HTTP; the programs' time per request.\n\n\
             | | ns/request |\n|---|---|\n\
             | {} | {} |\n| {} | {} |\n| one read ((with − without) / {reads}) | {} |\n\n\
             The server programs read the service {SERVER_READS_WITH_TRACEPARENT} times for a \
             request with a `traceparent`: at its start the request, its header map, the map's \
             group holding the header, the key, the value slice and the value's text; at its end \
             the request, the request line, the host, the remote address, the route and the \
             response writer. At {:.0} ns a read that is {:.0} ns before anything else they do. \
             The price is the kernel's: the helper's own checks and the return mitigations of the \
             Machine table, which make every return from a kernel function cost more on some \
             CPUs.\n",
            Config::ReadsNone.label(),
            cell(Scheme::Http, Config::ReadsNone),
            Config::Reads.label(),
            cell(Scheme::Http, Config::Reads),
            range(Some(read), 0),
            read.median,
            read.median * SERVER_READS_WITH_TRACEPARENT as f64,
            reads = trace_cost::READS,
        );
    }
    if tc.iter().any(|r| r.dry_run) {
        let _ = writeln!(
            md,
            "This host's kernel forbids BPF programs to write into processes (lockdown), so the \
             propagation-on rows ran in `--probe-mode propagation-dry-run`: the same programs, \
             which find the request's header bytes, check for the application's own \
             `traceparent` and format the client span's, but skip the helper call that copies \
             the 55 bytes into the traced process (`bpf_probe_write_user`); the figure lacks \
             that call's time.\n"
        );
    }

    // 4. Pipeline
    let _ = writeln!(
        md,
        "## 4. Pipeline throughput without the kernel\n\n\
         Ring-buffer records of a typical API's requests (`bench/src/workload.rs`; one batch of \
         distinct events, read in place and hot in cache, as the reader finds a busy ring buffer's records) replayed \
         through the agent's own code on one thread, {} events per batch, {:.1} s per stage and round. \
         **Instructions per span** are those of the same replay counted by valgrind (callgrind, \
         {} batches per stage after a first one, Wasm code included): a count, not a timing, \
         repeatable to a few percent on any x86-64 host (span ids are random, hash seeds differ), \
         so it shows what a change to the code did where spans/s move with the host's speed.\n\n\
         | stage | spans/s, median (min – max) | µs per span | instructions per span | OTLP bytes per span |\n|---|---|---|---|---|",
        crate::replay::BATCH,
        s.replay_time.as_secs_f64(),
        s.instruction_batches
    );
    let stages = crate::replay::Stage::ALL;
    for stage in stages {
        let runs = replay_runs(stage);
        let bytes = r
            .replay
            .iter()
            .find(|x| x.stage == stage)
            .and_then(|x| x.otlp_bytes_per_span);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            stage.label(),
            runs.map_or("–".into(), |s| format!(
                "{} ({} – {})",
                thousands(s.median),
                thousands(s.min),
                thousands(s.max)
            )),
            runs.map_or("–".into(), |s| format!("{:.2}", 1e6 / s.median)),
            instructions_per_span(r, stage).map_or("–".into(), thousands),
            bytes.map_or("–".into(), |b| format!("{b:.0}"))
        );
    }
    let export = Summary::of(r.export.iter().map(|x| x.spans_per_second));
    let _ = writeln!(
        md,
        "| export: built spans -> batches -> OTLP http/protobuf over loopback -> a receiver \
         decoding every request (exporter and receiver on the same core) | {} | {} | – | – |",
        export.map_or("–".into(), |s| format!(
            "{} ({} – {})",
            thousands(s.median),
            thousands(s.min),
            thousands(s.max)
        )),
        export.map_or("–".into(), |s| format!("{:.2}", 1e6 / s.median)),
    );
    plot::grouped_bars(
        &charts.join("pipeline-throughput.svg"),
        "Spans per second on one core (no kernel, no network)",
        "spans/s",
        &stages
            .iter()
            .map(|x| x.slug().to_string())
            .collect::<Vec<_>>(),
        &[(
            "spans/s".into(),
            stages.iter().map(|&x| replay_runs(x)).collect(),
        )],
        &PIPELINE_TARGETS.map(|(_, what, target)| Target {
            value: target,
            label: format!("target {what}"),
        }),
    )?;
    for (stage, _, target) in PIPELINE_TARGETS {
        if let Some(b) = instruction_budget(r, stage, replay(stage), target) {
            let _ = writeln!(
                md,
                "\n{}: this host ran {:.1} billion instructions per second in the timed rounds \
                 (spans/s × instructions per span), so {} spans/s needed at most {} instructions \
                 per span; the code takes {}.",
                stage.label(),
                b.host_rate / 1e9,
                thousands(target),
                thousands(b.allowed_per_span),
                thousands(b.per_span)
            );
        }
    }
    let _ = writeln!(md, "\n![pipeline]({})\n", chart("pipeline-throughput.svg"));

    // 5. Resources
    let _ = writeln!(
        md,
        "## 5. Agent CPU and memory\n\n\
         The agent's CPU time (user + system, % of one core) and resident memory from /proc over \
         {} s at idle and at each fixed request rate (open-loop load, keep-alive connections). \
         Peak RSS includes compiling the plugins at start.\n\n\
         | plugins | requests/s asked | achieved | agent CPU % | RSS MiB | peak RSS MiB |\n|---|---|---|---|---|---|",
        s.duration.as_secs()
    );
    for x in &r.resources {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} |",
            if x.plugins { "3 plugins" } else { "none" },
            if x.target_rate == 0.0 {
                "idle (after the load)".to_string()
            } else {
                thousands(x.target_rate)
            },
            x.achieved_rate,
            x.cpu_percent,
            x.rss_mib,
            x.peak_rss_mib
        );
    }
    let series = |f: fn(&crate::resources::ResourceRun) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        [(false, "agent"), (true, "agent + 3 plugins")]
            .iter()
            .map(|&(plugins, name)| {
                (name.to_string(), {
                    let mut points: Vec<(f64, f64)> = r
                        .resources
                        .iter()
                        .filter(|x| x.plugins == plugins)
                        .map(|x| (x.achieved_rate, f(x)))
                        .collect();
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    points
                })
            })
            .collect()
    };
    plot::lines(
        &charts.join("agent-cpu.svg"),
        "Agent CPU by request rate",
        "requests/s",
        "% of one core",
        &series(|x| x.cpu_percent),
        &[],
    )?;
    plot::lines(
        &charts.join("agent-rss.svg"),
        "Agent resident memory by request rate",
        "requests/s",
        "MiB",
        &series(|x| x.rss_mib),
        &[Target {
            value: 64.0,
            label: "target with 3 plugins".into(),
        }],
    )?;
    let _ = writeln!(
        md,
        "\n![agent CPU]({})\n\n![agent RSS]({})\n",
        chart("agent-cpu.svg"),
        chart("agent-rss.svg")
    );

    // 6. Start and reload
    let first = Summary::of(r.startup.iter().map(|x| x.first_span_ms));
    let attach = Summary::of(r.startup.iter().map(|x| x.attach_ms));
    let reload = Summary::of(r.reload_ms.iter().copied());
    let _ = writeln!(
        md,
        "## 6. Start to first span; plugin reload\n\n\
         | | median (min – max) ms | runs |\n|---|---|---|\n\
         | target started → its first span printed (agent already running, `--exe` selection, default 250 ms scan) | {} | {} |\n\
         | of which inspection + attach, from the agent's log | {} | {} |\n\
         | plugin `rename` → first span processed by the new version (includes the watcher's 100 ms settle window) | {} | {} |\n",
        range(first, 0),
        r.startup.len(),
        range(attach, 1),
        r.startup.len(),
        range(reload, 1),
        r.reload_ms.len()
    );

    // 7. Micro-benchmarks
    if !r.micro.is_empty() {
        let _ = writeln!(
            md,
            "## 7. Micro-benchmarks (criterion)\n\n\
             `cargo bench -p http-autoinstrument-bench` (benches `pipeline` and `plugins`), median \
             time per iteration.\n\n| benchmark | median µs | elements | spans/s |\n|---|---|---|---|"
        );
        for b in &r.micro {
            let _ = writeln!(
                md,
                "| `{}` | {:.2} | {} | {} |",
                b.id,
                b.median_us,
                b.elements.map_or("–".into(), |e| e.to_string()),
                b.elements
                    .map_or("–".into(), |e| thousands(e as f64 / (b.median_us / 1e6)))
            );
        }
        md.push('\n');
        sdk_filters(&mut md, &r.micro);
    }

    let _ = writeln!(
        md,
        "## Reproduce\n\n```sh\nscripts/setup.sh      # once: toolchains, Go, wrk, bpftrace, valgrind, plugins\nsudo scripts/bench.sh # about 20 minutes; rewrites this file\n```\n\n\
         `sudo scripts/bench.sh --smoke` runs every step for a second (what CI does). Only the \
         micro-benchmarks: `cargo bench -p http-autoinstrument-bench`."
    );
    std::fs::write(out, md)?;
    std::fs::write(
        charts.join("results.json"),
        serde_json::to_string_pretty(results)?,
    )?;
    Ok(())
}

/// The `sdk-filter-*` benchmarks as a table: the same filter per language and SDK, per span.
fn sdk_filters(md: &mut String, micro: &[crate::criterion::MicroBench]) {
    const ROWS: &[(&str, &str)] = &[
        ("rust", "Rust, SDK (`plugins/filter`)"),
        ("go", "Go, SDK (`plugins/go-filter`)"),
        ("python", "Python, SDK (`plugins/bench-filter-py`)"),
        (
            "python-packed",
            "Python, rows by hand (`plugins/bench-filter-py-packed`)",
        ),
        ("js", "JavaScript, SDK (`plugins/bench-filter-js`)"),
        (
            "js-packed",
            "JavaScript, rows by hand (`plugins/bench-filter-js-packed`)",
        ),
    ];
    let per_span = |lang: &str| {
        micro
            .iter()
            .find(|b| b.id == format!("sdk-filter-{lang}/batch-512"))
            .map(|b| b.median_us / 512.0)
    };
    let Some(rust) = per_span("rust") else {
        return;
    };
    let _ = writeln!(
        md,
        "### The same filter in each language\n\n\
         `plugins/filter` written with each SDK and by hand, in the chain on the same 512 spans \
         with the same settings (one span in five dropped; the benchmark checks that every \
         version keeps the same spans): the per-span cost of a language and its SDK.\n\n\
         | filter | µs per span, batch 512 | × Rust |\n|---|---|---|"
    );
    for (lang, label) in ROWS {
        if let Some(us) = per_span(lang) {
            let _ = writeln!(md, "| {label} | {us:.2} | {:.1} |", us / rust);
        }
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace_cost::sample_run;
    use crate::wrk::WrkResult;

    fn run(round: usize, mode: Mode, cpu_us: f64, probe_ns: Option<f64>) -> OverheadRun {
        OverheadRun {
            scheme: Scheme::Http,
            mode,
            round,
            wrk: WrkResult {
                requests_per_second: 1e6 / cpu_us,
                requests: 100_000,
                p50_us: 1000.0,
                p99_us: 2000.0,
            },
            service_cpu_us_per_request: cpu_us,
            baseline_cpu_us_per_request: 20.0,
            baseline_requests_per_second: 50_000.0,
            service_busy_percent: 50.0,
            probe_ns_per_request: probe_ns,
            check: String::new(),
        }
    }

    /// One round: none at 20 µs per request, the floor at 29 (9 added), the agent at `agent_cpu_us`.
    fn round(
        round: usize,
        floor_ns: Option<f64>,
        agent_cpu_us: f64,
        agent_ns: f64,
    ) -> [OverheadRun; 3] {
        [
            run(round, Mode::None, 20.0, None),
            run(round, Mode::Floor, 29.0, floor_ns),
            run(round, Mode::Agent, agent_cpu_us, Some(agent_ns)),
        ]
    }

    fn agent_figures(runs: &[OverheadRun]) -> ModeFigures {
        mode_figures(runs, Scheme::Http)
            .into_iter()
            .find(|f| f.mode == Mode::Agent)
            .unwrap()
    }

    #[test]
    fn the_probe_time_ratio_adds_the_programs_extra_run_time_to_the_floors_added_time() {
        // Floor adds 9 µs; the agent's programs run 1.35 µs longer than the floor's.
        let runs = round(1, Some(150.0), 30.0, 1500.0);
        let f = agent_figures(&runs);
        assert!((f.vs_floor_probe_time.unwrap().median - 1.15).abs() < 1e-9);
        assert!((f.vs_floor.unwrap().median - 10.0 / 9.0).abs() < 1e-9);
    }

    #[test]
    fn the_probe_time_ratio_does_not_follow_the_hosts_drift_between_measurements() {
        // Round 2: the host ran 20% slower while the agent was measured, so its CPU time (and
        // its CPU-time ratio) jumps; the programs' extra run time barely moves.
        let runs = [
            round(1, Some(150.0), 30.0, 1500.0),
            round(2, Some(150.0), 36.0, 1620.0),
        ]
        .concat();
        let f = agent_figures(&runs);
        let cpu = f.vs_floor.unwrap();
        let probe_time = f.vs_floor_probe_time.unwrap();
        assert!(cpu.max > 1.7, "{cpu:?}");
        assert!(probe_time.max - probe_time.min < 0.02, "{probe_time:?}");
    }

    #[test]
    fn a_throughput_target_becomes_instructions_per_span_at_the_hosts_measured_rate() {
        // 20,000 instructions per span at 500,000 spans/s: the host ran 10 billion a second,
        // so 1,000,000 spans/s would need 10,000 per span.
        let b = budget_of(20_000.0, 500_000.0, 1e6).unwrap();
        assert_eq!(b.host_rate, 1e10);
        assert_eq!(b.allowed_per_span, 10_000.0);
        assert!(budget_of(20_000.0, 0.0, 1e6).is_none());
    }

    #[test]
    fn the_peer_target_is_not_judged_when_copies_differ_by_more_than_agent_and_peer() {
        // Two uninstrumented copies differ by up to `spread` µs in round 2.
        let runs_with = |spread: f64| {
            let mut runs = [
                round(1, Some(150.0), 30.0, 1500.0),
                round(2, Some(150.0), 30.0, 1500.0),
            ]
            .concat();
            runs[3] = run(2, Mode::None, 20.0 - spread, None);
            mode_figures(&runs, Scheme::Http)
        };
        assert_eq!(method_spread_us(&runs_with(0.5)), Some(0.5));
        assert_eq!(method_spread_us(&runs_with(-4.0)), Some(4.0));
        assert_eq!(
            overhead_verdict(true, true),
            "not judged: within this run's noise (row (a) of section 1)"
        );
        assert_eq!(overhead_verdict(false, false), "**not met**");
    }

    #[test]
    fn the_server_bpf_time_target_is_judged_on_the_median_with_a_traceparent() {
        let runs = [
            sample_run(1, Config::ServerNoTraceparent, 1150.0),
            sample_run(1, Config::ServerTraceparent, 1250.0),
            sample_run(2, Config::ServerTraceparent, 1420.0),
            sample_run(2, Config::ServerNoTraceparent, 1290.0),
            sample_run(3, Config::ServerTraceparent, 1280.0),
        ];
        let t = server_bpf_time(&runs, Scheme::Http, 1300.0).unwrap();
        assert_eq!(t.with_traceparent.median, 1280.0);
        assert_eq!(t.without.unwrap().median, 1220.0);
        assert!(t.met);
        assert!(!server_bpf_time(&runs, Scheme::Http, 1270.0).unwrap().met);
        assert!(server_bpf_time(&runs, Scheme::Https, 1500.0).is_none());
    }

    #[test]
    fn the_hits_target_takes_the_most_hits_over_the_protocols() {
        let hits = |requests_do, server: u64, client: u64| ProbeHits {
            requests_do,
            protocol: "HTTP/1.1",
            requests: 100,
            entry_hits: 100,
            request_end_hits: server - 100,
            client_start_hits: client / 3,
            client_return_hits: client / 3,
            header_write_hits: client - 2 * (client / 3),
            events: 100,
            spans: 100,
            dry_run: false,
        };
        let served = hits(Requests::Served, 200, 0);
        assert!(
            most_hits(std::slice::from_ref(&served)).is_none(),
            "no client rows"
        );
        let h = most_hits(&[
            served,
            hits(Requests::Served, 201, 0),
            hits(Requests::CallsOut, 200, 200),
            hits(Requests::CallsOut, 200, 300),
        ])
        .unwrap();
        assert_eq!((h.server, h.client, h.header_writes), (2.01, 3.0, 1.0));
    }

    #[test]
    fn no_probe_time_ratio_without_the_kernels_accounting() {
        let runs = round(1, None, 30.0, 1500.0);
        assert!(agent_figures(&runs).vs_floor_probe_time.is_none());
        assert!(agent_figures(&runs).vs_floor.is_some());
    }

    #[test]
    fn the_same_filter_per_language_per_span_beside_rust() {
        let bench = |lang: &str, median_us: f64| crate::criterion::MicroBench {
            id: format!("sdk-filter-{lang}/batch-512"),
            median_us,
            elements: Some(512),
        };
        let mut md = String::new();
        sdk_filters(
            &mut md,
            &[bench("go", 512.0), bench("python-packed", 5120.0)],
        );
        assert_eq!(md, "", "no table without the Rust filter to compare with");
        sdk_filters(
            &mut md,
            &[
                bench("rust", 102.4),
                bench("go", 512.0),
                bench("js", 10240.0),
            ],
        );
        assert!(
            md.contains("| Rust, SDK (`plugins/filter`) | 0.20 | 1.0 |"),
            "{md}"
        );
        assert!(
            md.contains("| Go, SDK (`plugins/go-filter`) | 1.00 | 5.0 |"),
            "{md}"
        );
        assert!(
            md.contains("| JavaScript, SDK (`plugins/bench-filter-js`) | 20.00 | 100.0 |"),
            "{md}"
        );
        assert!(!md.contains("Python"), "{md}");
    }
}
