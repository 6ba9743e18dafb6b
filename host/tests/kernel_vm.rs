//! Trace context propagation on a kernel that lets BPF programs write into processes.
//!
//! The kernel CI runs on may be in lockdown, which refuses `bpf_probe_write_user`: there the
//! agent keeps propagation off (host/tests/traces.rs checks that). So that the writing itself is
//! tested on every CI run, this test boots Debian 12's Linux 6.1 (no lockdown) under qemu, with an
//! initramfs holding the agent, two copies of the Go fixture server and busybox, and checks what
//! service B received and the spans both sides made: the client span's context over HTTP, HTTPS
//! and from a goroutine, the application's own header alone, nothing when the buffer is short. No root is needed: qemu emulates the machine.
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::agent::{skip, AGENT};
use support::go_fixtures::{build_go_server, require_go, tools_dir, Variant};

/// The whole boot, agent start (attaching under emulation is slow) and requests.
const VM_TIMEOUT: Duration = Duration::from_secs(900);

/// One call A makes to B: B's URL, and what A's `/call` is asked to do.
struct Case {
    url: String,
    extra: &'static str,
    expect: Expect,
}

/// What B must receive.
enum Expect {
    /// The client span's context, once: B's span is its child.
    ClientContext,
    /// The application's own header, alone and untouched: B's span is its child.
    Own(&'static str),
    /// Nothing: the request line and the first headers leave the writer's buffer less room than
    /// the line needs. B's span starts a trace of its own.
    Nothing,
}

const OWN: &str = "00-11111111111111111111111111111111-2222222222222222-01";

/// Bytes net/http writes before the request's own headers, for `GET /headers?case=5&pad=` and
/// `pad` bytes: 4 + 20 + pad + 11 (` HTTP/1.1`), `Host: 127.0.0.1:<5 digits>` 23 and
/// `User-Agent: Go-http-client/1.1` 32. 3,976 leaves 30 bytes of the transport's 4,096-byte
/// buffer, short of the 70-byte line (with a 4-digit port, 31).
const PAD_FOR_NO_ROOM: usize = 3_976;

fn cases() -> Vec<Case> {
    let http = |query: &str| format!("http://127.0.0.1:$PB/headers?{query}");
    vec![
        Case {
            url: http("case=1"),
            extra: "",
            expect: Expect::ClientContext,
        },
        Case {
            url: "https://127.0.0.1:$PBS/headers?case=2".into(),
            extra: "",
            expect: Expect::ClientContext,
        },
        Case {
            url: http("case=3"),
            extra: "&mode=goroutine",
            expect: Expect::ClientContext,
        },
        Case {
            url: http("case=4"),
            extra: "",
            expect: Expect::Own(OWN),
        },
        Case {
            url: http(&format!("case=5&pad={}", "x".repeat(PAD_FOR_NO_ROOM))),
            extra: "",
            expect: Expect::Nothing,
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

fn init_script() -> String {
    let mut calls = String::new();
    for (i, case) in cases().iter().enumerate() {
        // $PB and $PBS (B's ports) are left for the shell to expand.
        let url = query_escape(&case.url);
        let own = match case.expect {
            Expect::Own(value) => format!("&traceparent={}", query_escape(value)),
            _ => String::new(),
        };
        calls.push_str(&format!(
            "echo '== case {}'\nwget -q -O - \"http://127.0.0.1:$PA/call?url={url}{}{own}\"\n",
            i + 1,
            case.extra
        ));
    }
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
OTEL_SERVICE_NAME=svc-b /svc-b > /tmp/b.log 2>&1 &
OTEL_SERVICE_NAME=svc-a /svc-a > /tmp/a.log 2>&1 &
HTTP_AUTOINSTRUMENT_PROPAGATION=on /agent --exe '/svc-*' > /tmp/spans.out 2> /tmp/agent.err &
AGENT=$!
i=0
traced() {{ n=$(grep -c 'tracing pid' /tmp/agent.err 2>/dev/null); [ "${{n:-0}}" -ge 2 ]; }}
while ! traced && [ $i -lt 600 ] && kill -0 $AGENT; do
  sleep 1; i=$((i+1))
done
listening() {{ grep -q LISTENING /tmp/a.log 2>/dev/null && grep -q LISTENING /tmp/b.log 2>/dev/null; }}
while ! listening && [ $i -lt 600 ]; do
  sleep 1; i=$((i+1))
done
echo "== agent ready after ${{i}}s"
PA=$(sed -n 's/.*http=\([0-9]*\).*/\1/p' /tmp/a.log)
PB=$(sed -n 's/.*http=\([0-9]*\).*/\1/p' /tmp/b.log)
PBS=$(sed -n 's/.*https=\([0-9]*\).*/\1/p' /tmp/b.log)
{calls}sleep 2
kill -INT $AGENT
i=0
while kill -0 $AGENT 2>/dev/null && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done
echo "== spans"
cat /tmp/spans.out
echo "== agent log"
cat /tmp/agent.err
echo "== end"
poweroff -f
"#
    )
}

/// Boots the VM and returns what its console printed.
fn run_vm(kernel: &Path, busybox: &Path, server: &Path) -> String {
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
    copy_with_libraries(server, &root.join("svc-a"), &root);
    copy_with_libraries(server, &root.join("svc-b"), &root);
    let init = root.join("init");
    std::fs::write(&init, init_script()).unwrap();
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
    eprintln!("VM ran {:?}", started.elapsed());
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
    let Some(go) = require_go("1.24") else {
        return;
    };
    let server = build_go_server(&go.version, Variant::Stripped);
    let output = run_vm(&kernel, &busybox, &server);
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
    for (i, case) in cases().iter().enumerate() {
        let n = i + 1;
        let received: Vec<&str> = section(&output, &format!("case {n}"))
            .lines()
            .filter_map(|l| l.strip_prefix("Traceparent: "))
            .collect();
        let client = spans
            .lines()
            .find(|l| {
                field(l, "kind") == Some("client") && l.contains(&format!("/headers?case={n}"))
            })
            .unwrap_or_else(|| panic!("case {n}: no client span in\n{spans}"));
        let b = spans
            .lines()
            .find(|l| {
                field(l, "service") == Some("svc-b")
                    && field(l, "kind") == Some("server")
                    && l.contains(&format!("case={n}"))
            })
            .unwrap_or_else(|| panic!("case {n}: no span of B in\n{spans}"));
        let (trace, span) = (
            field(client, "trace").unwrap(),
            field(client, "span").unwrap(),
        );
        match case.expect {
            Expect::ClientContext => {
                assert_eq!(
                    received,
                    vec![format!("00-{trace}-{span}-01")],
                    "case {n}: B received the client span's context, once"
                );
                assert_eq!(field(b, "trace"), Some(trace), "case {n}: {b}");
                assert_eq!(field(b, "parent"), Some(span), "case {n}: {b}");
            }
            Expect::Own(own) => {
                assert_eq!(
                    received,
                    vec![own],
                    "case {n}: the application's header alone"
                );
                assert_eq!(field(b, "trace"), Some(&own[3..35]), "case {n}: {b}");
                assert_eq!(field(b, "parent"), Some(&own[36..52]), "case {n}: {b}");
            }
            Expect::Nothing => {
                assert!(
                    received.is_empty(),
                    "case {n}: no room, no write: {received:?}"
                );
                assert_eq!(field(b, "parent"), None, "case {n}: B starts a trace: {b}");
                assert_ne!(field(b, "trace"), Some(trace), "case {n}: {b}");
            }
        }
    }
    let stats = spans
        .lines()
        .find(|l| l.contains("final stats:"))
        .unwrap_or_else(|| panic!("no final stats in\n{spans}"));
    assert!(stats.contains("events_lost=0"), "{stats}");
    eprintln!("{stats}");
}
