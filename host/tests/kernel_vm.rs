//! Trace context propagation on a kernel that lets BPF programs write into processes.
//!
//! The kernel CI runs on may be in lockdown, which refuses `bpf_probe_write_user`: there the
//! agent keeps propagation off (host/tests/traces.rs checks that). So that the writing itself is
//! tested on every CI run, this test boots Debian 12's Linux 6.1 (no lockdown) under qemu, with an
//! initramfs holding the agent, busybox and the Go fixture server as B and as three callers A (Go
//! 1.21, 1.24 and the newest), and checks, for each caller, what B received and the spans both
//! sides made: the client span's context over HTTP, HTTPS, HTTP/2
//! and from a goroutine, the application's own header alone, nothing when the buffer is short, a
//! reverse proxy's copied header replaced; the same context from a fourth caller that uses
//! golang.org/x/net/http2's Transport; then, sampling at one half, each trace kept or dropped
//! whole across both services. No root is needed: qemu emulates the machine.
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::agent::{skip, AGENT};
use support::go_fixtures::{build_go_server, require_go, require_x_net, tools_dir, Variant};

/// The whole boot, agent start (attaching under emulation is slow) and requests.
const VM_TIMEOUT: Duration = Duration::from_secs(1500);

/// One call A makes to B: B's URL, and what A's `/call` is asked to do.
struct Case {
    url: String,
    extra: &'static str,
    expect: Expect,
    /// Made over HTTP/2 (`&proto=h2`, TLS): the header goes into the HEADERS frame.
    h2: bool,
}

/// The caller's context in the request sent to A's `/proxy` (cases 6 and 9).
const CALLER: &str = "00-33333333333333333333333333333333-4444444444444444-01";

/// Where the agent in the VM serves `/metrics`, read between calls for the probes' hits.
const METRICS_PORT: u16 = 9464;

/// Requests in the sampling run, each A's `/call` to B; the ratio is one half.
const SAMPLED_CALLS: usize = 40;

/// What B must receive.
enum Expect {
    /// The client span's context, once: B's span is its child.
    ClientContext,
    /// The application's own header, alone and untouched: B's span is its child.
    Own(&'static str),
    /// Nothing: the request line and the first headers leave the writer's buffer less room than
    /// the line needs. B's span starts a trace of its own.
    Nothing,
    /// A's `/proxy` (httputil.ReverseProxy, over HTTP/1.1 or HTTP/2) forwards a request carrying
    /// `CALLER`: the copied value is replaced by the proxy's client span, B's parent; A's server
    /// span is the caller's child.
    Proxied,
}

const OWN: &str = "00-11111111111111111111111111111111-2222222222222222-01";

/// Bytes net/http writes before the request's own headers, for `GET /headers?case=5&pad=` and
/// `pad` bytes: 4 + 20 + pad + 11 (` HTTP/1.1`), `Host: 127.0.0.1:<5 digits>` 23 and
/// `User-Agent: Go-http-client/1.1` 32. 3,976 leaves 30 bytes of the transport's 4,096-byte
/// buffer (with a 4-digit port, 31), less the caller's `&from=<name>`: short of the 70-byte line.
const PAD_FOR_NO_ROOM: usize = 3_976;

/// The caller built on golang.org/x/net/http2's Transport (host/tests/fixtures/goxnet).
const X_NET_CALLER: &str = "svc-xnet";

/// The calls each caller `from` (a service A, by name) makes to B.
fn cases(from: &str) -> Vec<Case> {
    if from == X_NET_CALLER {
        // x/net's own Transport over TLS: its writeHeaders carries the write.
        return vec![Case {
            url: format!("https://127.0.0.1:$PBS/headers?case=1&from={from}"),
            extra: "&via=h2",
            expect: Expect::ClientContext,
            h2: true,
        }];
    }
    let http = |query: &str| format!("http://127.0.0.1:$PB/headers?{query}&from={from}");
    vec![
        Case {
            url: http("case=1"),
            extra: "",
            expect: Expect::ClientContext,
            h2: false,
        },
        Case {
            url: format!("https://127.0.0.1:$PBS/headers?case=2&from={from}"),
            extra: "",
            expect: Expect::ClientContext,
            h2: false,
        },
        Case {
            url: http("case=3"),
            extra: "&mode=goroutine",
            expect: Expect::ClientContext,
            h2: false,
        },
        Case {
            url: http("case=4"),
            extra: "",
            expect: Expect::Own(OWN),
            h2: false,
        },
        Case {
            url: format!(
                "http://127.0.0.1:$PB/headers?case=5&from={from}&pad={}",
                "x".repeat(PAD_FOR_NO_ROOM)
            ),
            extra: "",
            expect: Expect::Nothing,
            h2: false,
        },
        Case {
            url: http("case=6"),
            extra: "",
            expect: Expect::Proxied,
            h2: false,
        },
        Case {
            url: format!("https://127.0.0.1:$PBS/headers?case=7&from={from}"),
            extra: "&proto=h2",
            expect: Expect::ClientContext,
            h2: true,
        },
        Case {
            url: format!("https://127.0.0.1:$PBS/headers?case=8&from={from}"),
            extra: "&proto=h2",
            expect: Expect::Own(OWN),
            h2: true,
        },
        Case {
            url: format!("https://127.0.0.1:$PBS/headers?case=9&from={from}"),
            extra: "&proto=h2",
            expect: Expect::Proxied,
            h2: true,
        },
    ]
}

/// The tools this test needs, or `None` (skipped) when they are missing outside CI.
fn vm_tools() -> Option<(PathBuf, PathBuf)> {
    let kernel = tools_dir().join("vm/vmlinuz");
    let busybox = PathBuf::from("/bin/busybox");
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if kernel.is_file() && busybox.is_file() && qemu {
        return Some((kernel, busybox));
    }
    let missing =
        "the VM kernel, busybox-static or qemu-system-x86 is missing: run scripts/setup.sh";
    skip(missing);
    None
}

/// Copies `binary` and the shared libraries it loads (as `ldd` names them) under `root`.
fn copy_with_libraries(binary: &Path, to: &Path, root: &Path) {
    std::fs::copy(binary, to).unwrap();
    let ldd = Command::new("ldd").arg(binary).output().unwrap();
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) else {
            continue;
        };
        let target = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(path, &target).unwrap_or_else(|e| panic!("copying {path}: {e}"));
    }
}

/// A query value with the characters that matter in these URLs escaped.
fn query_escape(text: &str) -> String {
    text.replace('%', "%25")
        .replace(':', "%3A")
        .replace('/', "%2F")
        .replace('?', "%3F")
        .replace('=', "%3D")
        .replace('&', "%26")
}

/// The VM's `/init`: B and the callers (each a service A, named in `callers`, listening on
/// `$PA_<index>`) start, the agent traces them, each caller makes the calls of `cases`; then the
/// agent restarts with sampling at one half and the first caller calls B `SAMPLED_CALLS` times.
fn init_script(callers: &[String]) -> String {
    let mut start = String::new();
    let mut ports = String::new();
    let mut listening = String::from("grep -q LISTENING /tmp/svc-b.log 2>/dev/null");
    for (c, caller) in callers.iter().enumerate() {
        start.push_str(&format!(
            "OTEL_SERVICE_NAME={caller} /{caller} > /tmp/{caller}.log 2>&1 &\n"
        ));
        ports.push_str(&format!(
            "PA_{c}=$(sed -n 's/.*http=\\([0-9]*\\).*/\\1/p' /tmp/{caller}.log)\n"
        ));
        listening.push_str(&format!(
            " && grep -q LISTENING /tmp/{caller}.log 2>/dev/null"
        ));
    }
    let mut calls = String::new();
    for (c, caller) in callers.iter().enumerate() {
        for (i, case) in cases(caller).iter().enumerate() {
            // $PB and $PBS (B's ports) are left for the shell to expand.
            let url = query_escape(&case.url);
            let own = match case.expect {
                Expect::Own(value) => format!("&traceparent={}", query_escape(value)),
                _ => String::new(),
            };
            let request = match case.expect {
                Expect::Proxied => format!(
                    "--header 'traceparent: {CALLER}' \"http://127.0.0.1:$PA_{c}/proxy?to={url}{}\"",
                    case.extra
                ),
                _ => format!(
                    "\"http://127.0.0.1:$PA_{c}/call?url={url}{}{own}\"",
                    case.extra
                ),
            };
            calls.push_str(&format!(
                "echo '== case {n} {caller}'\nwget -q -O - {request}\nhits 'hits after case {n} {caller}'\n",
                n = i + 1
            ));
        }
    }
    let services = callers.len() + 1;
    let (sampled_url, sampled_end) = (
        query_escape("http://127.0.0.1:$PB/headers?sampling="),
        query_escape("&end=1"),
    );
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
mount -t devtmpfs dev /dev
mount -t securityfs none /sys/kernel/security
mount -t tracefs none /sys/kernel/tracing
mount -t bpf bpf /sys/fs/bpf
ip link set lo up
echo "127.0.0.1 localhost" > /etc/hosts
echo "== lockdown: $(cat /sys/kernel/security/lockdown 2>&1)"
cd /tmp
OTEL_SERVICE_NAME=svc-b /svc-b > /tmp/svc-b.log 2>&1 &
{start}# start_agent OUT ERR: the agent, tracing both services, its spans to OUT and its log to ERR.
start_agent() {{
  HTTP_AUTOINSTRUMENT_PROPAGATION=on HTTP_AUTOINSTRUMENT_METRICS_ADDRESS=127.0.0.1:{METRICS_PORT} \
    /agent --exe '/svc-*' > $1 2> $2 &
  AGENT=$!
  i=0
  while n=$(grep -c 'tracing pid' $2 2>/dev/null); [ "${{n:-0}}" -lt {services} ] && [ $i -lt 600 ] && kill -0 $AGENT; do
    sleep 1; i=$((i+1))
  done
  echo "== agent ready after ${{i}}s"
}}
# hits NAME: the client probes' hit counters so far, from the agent's /metrics, which publishes
# them after each scan: read once a second until two readings agree.
hits() {{
  echo "== $1"
  prev=
  while sleep 1; do
    now=$(wget -q -O - http://127.0.0.1:{METRICS_PORT}/metrics | grep 'probe_hits_total{{probe="\(client_start\|client_return\|header_write\)"}}')
    [ "$now" = "$prev" ] && break
    prev=$now
  done
  echo "$now"
}}
stop_agent() {{
  sleep 2
  kill -INT $AGENT
  i=0
  while kill -0 $AGENT 2>/dev/null && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done
}}
i=0
listening() {{ {listening}; }}
while ! listening && [ $i -lt 600 ]; do
  sleep 1; i=$((i+1))
done
{ports}PB=$(sed -n 's/.*http=\([0-9]*\).*/\1/p' /tmp/svc-b.log)
PBS=$(sed -n 's/.*https=\([0-9]*\).*/\1/p' /tmp/svc-b.log)
start_agent /tmp/spans.out /tmp/agent.err
hits 'hits before the calls'
{calls}stop_agent
echo "== spans"
cat /tmp/spans.out
echo "== agent log"
cat /tmp/agent.err
export OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.5
start_agent /tmp/sampled.out /tmp/sampled.err
n=1
while [ $n -le {SAMPLED_CALLS} ]; do
  wget -q -O /dev/null "http://127.0.0.1:$PA_0/call?url={sampled_url}$n{sampled_end}"
  n=$((n+1))
done
stop_agent
echo "== sampled spans"
cat /tmp/sampled.out
echo "== sampled agent log"
cat /tmp/sampled.err
echo "== end"
poweroff -f
"#
    )
}

/// Boots the VM with B (`b`) and the callers (name, binary), and returns what its console
/// printed.
fn run_vm(kernel: &Path, busybox: &Path, b: &Path, callers: &[(String, PathBuf)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for sub in ["bin", "proc", "sys", "tmp", "dev", "etc"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    // The debug agent is hundreds of MB with its debug information; the VM needs the code.
    let stripped = dir.path().join("agent");
    let strip = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(AGENT)
        .status()
        .unwrap();
    assert!(strip.success(), "strip {AGENT}");
    copy_with_libraries(&stripped, &root.join("agent"), &root);
    copy_with_libraries(b, &root.join("svc-b"), &root);
    for (name, binary) in callers {
        copy_with_libraries(binary, &root.join(name), &root);
    }
    let names: Vec<String> = callers.iter().map(|(name, _)| name.clone()).collect();
    let init = root.join("init");
    std::fs::write(&init, init_script(&names)).unwrap();
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let initrd = dir.path().join("initrd.cpio");
    let cpio = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && {b} find . | {b} cpio -o -H newc > '{}'",
            root.display(),
            initrd.display(),
            b = busybox.display()
        ))
        .status()
        .unwrap();
    assert!(cpio.success(), "building the initramfs");

    let console = dir.path().join("console.log");
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "2"])
        .args(["-nographic", "-no-reboot", "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&console).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting qemu-system-x86_64");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = qemu.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > VM_TIMEOUT {
            let _ = qemu.kill();
            let _ = qemu.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let output = std::fs::read_to_string(&console)
        .unwrap_or_default()
        .replace('\r', "");
    // Kept for reading when a check fails (the temporary directory goes with the test).
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernel_vm-console.log");
    let _ = std::fs::write(&kept, &output);
    eprintln!(
        "VM ran {:?}; its console: {}",
        started.elapsed(),
        kept.display()
    );
    assert!(
        status.is_some(),
        "the VM did not finish in {VM_TIMEOUT:?}:\n{output}"
    );
    output
}

/// The text between `== {name}` and the next `== ` line.
fn section<'a>(output: &'a str, name: &str) -> &'a str {
    let start = output
        .find(&format!("== {name}\n"))
        .unwrap_or_else(|| panic!("no '== {name}' in the VM's output:\n{output}"));
    let body = &output[start + name.len() + 4..];
    &body[..body.find("\n== ").unwrap_or(body.len())]
}

/// The span line of `service`, of `kind`, that contains every one of `markers`.
fn span_line<'a>(spans: &'a str, service: &str, kind: &str, markers: &[&str]) -> Option<&'a str> {
    spans.lines().find(|l| {
        field(l, "service") == Some(service)
            && field(l, "kind") == Some(kind)
            && markers.iter().all(|m| l.contains(m))
    })
}

/// The agent's `final stats:` line, printed with its spans when it stops.
fn final_stats(spans: &str) -> &str {
    spans
        .lines()
        .find(|l| l.contains("final stats:"))
        .unwrap_or_else(|| panic!("no final stats in\n{spans}"))
}

/// A span line of the stdout exporter: its `key=value` field.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn propagation_on_linux_6_1_writes_the_client_span_into_the_request() {
    let Some((kernel, busybox)) = vm_tools() else {
        return;
    };
    // The callers, whose probes write: Go 1.21, 1.24 and the newest; B reads.
    let mut callers: Vec<(String, PathBuf)> = Vec::new();
    for version in ["1.21", "1.24", "newest"] {
        let Some(go) = require_go(version) else {
            return;
        };
        let (major, minor, _) = go.numbers();
        let name = format!("svc-a{major}{minor}");
        if !callers.iter().any(|(n, _)| *n == name) {
            callers.push((name, build_go_server(&go.version, Variant::Stripped)));
        }
    }
    let Some(go) = require_go("1.24") else {
        return;
    };
    if !require_x_net() {
        return;
    }
    callers.push((
        X_NET_CALLER.to_string(),
        build_go_server(&go.version, Variant::XNetStripped),
    ));
    let b = build_go_server(&go.version, Variant::Stripped);
    let output = run_vm(&kernel, &busybox, &b, &callers);
    assert!(
        output.contains("== lockdown: [none]"),
        "the VM's kernel must allow writes:\n{output}"
    );
    let log = section(&output, "agent log");
    assert!(
        log.contains("trace context propagation on"),
        "propagation should be on in the VM:\n{log}"
    );
    let spans = section(&output, "spans");
    let mut before = hits(section(&output, "hits before the calls"));
    for (caller, _) in &callers {
        check_calls(&output, spans, caller, &mut before);
    }
    let stats = final_stats(spans);
    assert!(stats.contains("events_lost=0"), "{stats}");
    let proxied = (callers.iter())
        .flat_map(|(caller, _)| cases(caller))
        .filter(|case| matches!(case.expect, Expect::Proxied))
        .count();
    assert!(
        stats.contains(&format!("traceparent_replaced={proxied} ")),
        "one replaced per proxied call: {stats}"
    );
    eprintln!("{stats}");
    check_sampling_across_services(section(&output, "sampled spans"), &callers[0].0);
}

/// The client probes' hits so far: start and return together, and the header write.
struct Hits {
    calls: u64,
    writes: u64,
}

/// The hit counters in a `hits` section of the VM's output (lines of `/metrics`).
fn hits(section: &str) -> Hits {
    let count = |probe: &str| -> u64 {
        let series = format!("probe_hits_total{{probe=\"{probe}\"}} ");
        section
            .lines()
            .find_map(|l| Some(l.split_once(&series)?.1.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("no {series} in {section}"))
    };
    Hits {
        calls: count("client_start") + count("client_return"),
        writes: count("header_write"),
    }
}

/// What B received from `caller` and the spans of each of its calls (`cases`), and the probe hits
/// each call took (counted from `before`, the hits before the caller's first call).
fn check_calls(output: &str, spans: &str, caller: &str, before: &mut Hits) {
    for (i, case) in cases(caller).iter().enumerate() {
        let n = i + 1;
        // One call: exactly one hit of the header write, whatever the protocol, and one each of
        // the call's start and return, also where Go grows the goroutine's stack on entry (these
        // calls are each on a fresh connection's goroutine).
        let after = hits(section(output, &format!("hits after case {n} {caller}")));
        let (calls, writes) = (after.calls - before.calls, after.writes - before.writes);
        let protocol = if case.h2 { "HTTP/2" } else { "HTTP/1.1" };
        eprintln!(
            "{caller} case {n} ({protocol}): {calls} start/return hits, {writes} header write"
        );
        assert_eq!(
            writes, 1,
            "{caller} case {n}: one header-write hit per call"
        );
        assert_eq!(calls, 2, "{caller} case {n}: start and return");
        *before = after;
        let marker = format!("case={n}");
        let received: Vec<&str> = section(output, &format!("case {n} {caller}"))
            .lines()
            .filter_map(|l| l.strip_prefix("Traceparent: "))
            .collect();
        let from = format!("from={caller}");
        let of = |service: &str, kind: &str| span_line(spans, service, kind, &[&marker, &from]);
        let client = of(caller, "client")
            .unwrap_or_else(|| panic!("{caller} case {n}: no client span in\n{spans}"));
        let b = of("svc-b", "server")
            .unwrap_or_else(|| panic!("{caller} case {n}: no span of B in\n{spans}"));
        let (trace, span) = (
            field(client, "trace").unwrap(),
            field(client, "span").unwrap(),
        );
        let n = format!("{caller} case {n}");
        let version = if case.h2 { "2" } else { "1.1" };
        for span in [client, b] {
            assert_eq!(
                field(span, "network.protocol.version"),
                Some(version),
                "{n}: {span}"
            );
        }
        match case.expect {
            Expect::ClientContext => {
                assert_eq!(
                    received,
                    vec![format!("00-{trace}-{span}-01")],
                    "{n}: B received the client span's context, once"
                );
                assert_eq!(field(b, "trace"), Some(trace), "{n}: {b}");
                assert_eq!(field(b, "parent"), Some(span), "{n}: {b}");
            }
            Expect::Own(own) => {
                assert_eq!(received, vec![own], "{n}: the application's header alone");
                assert_eq!(field(b, "trace"), Some(&own[3..35]), "{n}: {b}");
                assert_eq!(field(b, "parent"), Some(&own[36..52]), "{n}: {b}");
            }
            Expect::Proxied => {
                assert_eq!(
                    received,
                    vec![format!("00-{trace}-{span}-01")],
                    "{n}: the copied header replaced by the proxy's client span, once"
                );
                assert_eq!(trace, &CALLER[3..35], "{n}: the caller's trace: {client}");
                // The proxy's request names B's URL in its query, escaped.
                let to = format!("case%3D{}%26from%3D{caller}", i + 1);
                let proxy = span_line(spans, caller, "server", &[" url.path=/proxy ", &to])
                    .unwrap_or_else(|| panic!("{n}: no span of the proxy in\n{spans}"));
                assert_eq!(field(proxy, "trace"), Some(trace), "{n}: {proxy}");
                assert_eq!(field(proxy, "parent"), Some(&CALLER[36..52]), "{proxy}");
                assert_eq!(field(client, "parent"), field(proxy, "span"), "{client}");
                assert_eq!(field(b, "trace"), Some(trace), "{n}: {b}");
                assert_eq!(field(b, "parent"), Some(span), "{n}: {b}");
            }
            Expect::Nothing => {
                assert!(received.is_empty(), "{n}: no room, no write: {received:?}");
                assert_eq!(field(b, "parent"), None, "{n}: B starts a trace: {b}");
                assert_ne!(field(b, "trace"), Some(trace), "{n}: {b}");
            }
        }
    }
}

/// With `parentbased_traceidratio` at one half, A decides for each request and B follows the
/// flag A's client span sent: A's server and client spans and B's span are kept or dropped
/// together, one trace.
fn check_sampling_across_services(spans: &str, caller: &str) {
    let mut kept = 0;
    for n in 1..=SAMPLED_CALLS {
        let escaped = format!("sampling%3D{n}%26end");
        let plain = format!("sampling={n}&end");
        let found = (
            span_line(spans, caller, "server", &[&escaped]),
            span_line(spans, caller, "client", &[&plain]),
            span_line(spans, "svc-b", "server", &[&plain]),
        );
        match found {
            (None, None, None) => {}
            (Some(a), Some(client), Some(b)) => {
                kept += 1;
                let trace = field(a, "trace");
                assert_eq!(field(client, "trace"), trace, "request {n}: {client}");
                assert_eq!(field(client, "parent"), field(a, "span"), "request {n}");
                assert_eq!(field(b, "trace"), trace, "request {n}: {b}");
                assert_eq!(field(b, "parent"), field(client, "span"), "request {n}");
            }
            partial => panic!("request {n}: a trace kept in part: {partial:?}\n{spans}"),
        }
    }
    eprintln!("sampling at 0.5 across A and B: {kept} of {SAMPLED_CALLS} traces kept whole");
    // Propagation costs each call, sampled or not, one probe hit: the header write (HTTP/1.1
    // here), beside the call's own start and return.
    let stats = final_stats(spans);
    let stat = |name: &str| -> u64 {
        field(stats, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {stats}"))
    };
    let calls = SAMPLED_CALLS as u64;
    assert_eq!(stat("header_write_hits"), calls, "{stats}");
    assert_eq!(stat("traceparent_written"), calls, "{stats}");
    assert_eq!(stat("client_call_hits"), 2 * calls, "{stats}");
    eprintln!(
        "probe hits per call: {:.2} (start and return) + {:.2} (header write)",
        stat("client_call_hits") as f64 / calls as f64,
        stat("header_write_hits") as f64 / calls as f64
    );
    // Binomial(40, 0.5) falls outside 5..=35 with a probability below 1e-6.
    assert!(
        (5..=35).contains(&kept),
        "{kept} of {SAMPLED_CALLS} traces kept at ratio 0.5"
    );
}
