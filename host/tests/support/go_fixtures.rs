//! Go fixture programs for integration tests: finding the installed Go toolchains, building the
//! fixture servers (cached per version, variant and source hash) and running them.
//!
//! Use from an integration test with
//! `#[path = "support/go_fixtures.rs"] mod go_fixtures;` (or a `support/mod.rs` that declares it).
//! Toolchains live in `$HTTP_AUTOINSTRUMENT_TOOLS` (default `~/.cache/http-autoinstrument/tools`),
//! one `go<version>/bin/go` per version, as installed by `scripts/setup.sh`.
#![allow(dead_code)] // each test binary uses a different part of this file

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a fixture server may take to print its LISTENING line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One installed Go toolchain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoToolchain {
    /// Full version without the `go` prefix, e.g. `1.24.11`.
    pub version: String,
    /// The `go` command.
    pub go: PathBuf,
}

impl GoToolchain {
    /// `(major, minor, patch)` for comparisons.
    pub fn numbers(&self) -> (u32, u32, u32) {
        parse_numbers(&self.version).expect("toolchain versions are validated when listed")
    }

    /// True from `go{major}.{minor}` on.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        let (ma, mi, _) = self.numbers();
        (ma, mi) >= (major, minor)
    }
}

fn parse_numbers(version: &str) -> Option<(u32, u32, u32)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    parts.next().is_none().then_some((major, minor, patch))
}

pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HTTP_AUTOINSTRUMENT_TOOLS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".cache/http-autoinstrument/tools")
}

/// The installed toolchains, oldest first.
pub fn go_versions() -> Vec<GoToolchain> {
    let Ok(entries) = std::fs::read_dir(tools_dir()) else {
        return Vec::new();
    };
    let mut found: Vec<GoToolchain> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix("go")?.to_string();
            parse_numbers(&version)?;
            let go = entry.path().join("bin/go");
            go.is_file().then_some(GoToolchain { version, go })
        })
        .collect();
    found.sort_by_key(GoToolchain::numbers);
    found
}

/// The newest installed toolchain.
pub fn newest() -> Option<GoToolchain> {
    go_versions().pop()
}

/// The newest installed toolchain matching `version` (`"1.21"` or `"1.21.13"`; `"newest"` for
/// the newest of all). When none is installed: panics under `CI=true` (CI must test every
/// version), otherwise prints a note and returns `None` so the test can return early.
pub fn require_go(version: &str) -> Option<GoToolchain> {
    let found = if version == "newest" {
        newest()
    } else {
        go_versions()
            .into_iter()
            .rfind(|t| t.version == version || t.version.starts_with(&format!("{version}.")))
    };
    if found.is_none() {
        let message = format!(
            "Go {version} is not installed in {}; run scripts/setup.sh to install the test toolchains",
            tools_dir().display()
        );
        super::skip::skip(&message);
    }
    found
}

/// Which fixture program to build, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `goserver` built like users build: `go build`, with symbols and DWARF.
    Default,
    /// `goserver` built with `-ldflags=-s -w` (no symbol table, no DWARF).
    Stripped,
    /// `gonohttp`: a Go program that does not use net/http.
    NoHttp,
    /// `goserver` built with `-buildmode=pie` (an `ET_DYN` executable).
    Pie,
    /// `goserver` with cgo (dynamically linked, through the C linker) and `-buildmode=pie`, as
    /// several distributions build Go.
    CgoPie,
    /// The same, stripped (`-ldflags=-s -w`).
    CgoPieStripped,
    /// `goxnet`: a server whose `/call` makes its requests with golang.org/x/net/http2's
    /// Transport, built against Debian's x/net source ([`require_x_net`] first).
    XNet,
    /// The same, stripped (`-ldflags=-s -w`).
    XNetStripped,
}

impl Variant {
    /// The directories whose `.go` files make the program: its own, and for the servers the
    /// listeners they share (`golisten`).
    fn source_dirs(self) -> Vec<PathBuf> {
        let names: &[&str] = match self {
            Variant::Default
            | Variant::Stripped
            | Variant::Pie
            | Variant::CgoPie
            | Variant::CgoPieStripped => &["goserver", "golisten"],
            Variant::NoHttp => &["gonohttp"],
            Variant::XNet | Variant::XNetStripped => &["goxnet", "golisten"],
        };
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        names.iter().map(|name| fixtures.join(name)).collect()
    }

    fn build_flags(self) -> &'static [&'static str] {
        match self {
            Variant::Stripped | Variant::XNetStripped => &["-ldflags=-s -w"],
            Variant::Pie | Variant::CgoPie => &["-buildmode=pie"],
            Variant::CgoPieStripped => &["-buildmode=pie", "-ldflags=-s -w"],
            Variant::Default | Variant::NoHttp | Variant::XNet => &[],
        }
    }

    /// `CGO_ENABLED` for the build.
    fn cgo(self) -> &'static str {
        match self {
            Variant::CgoPie | Variant::CgoPieStripped => "1",
            _ => "0",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Variant::Default => "server",
            Variant::Stripped => "server-stripped",
            Variant::NoHttp => "nohttp",
            Variant::Pie => "server-pie",
            Variant::CgoPie => "server-cgo-pie",
            Variant::CgoPieStripped => "server-cgo-pie-stripped",
            Variant::XNet => "xnet",
            Variant::XNetStripped => "xnet-stripped",
        }
    }

    fn uses_x_net(self) -> bool {
        matches!(self, Variant::XNet | Variant::XNetStripped)
    }
}

/// Where Debian's Go source packages are (`golang-golang-x-net-dev`, `golang-golang-x-text-dev`):
/// `$HTTP_AUTOINSTRUMENT_GOCODE`, default `/usr/share/gocode/src`. No module proxy is reachable,
/// so the x/net fixture is built against them.
pub fn gocode_dir() -> PathBuf {
    std::env::var_os("HTTP_AUTOINSTRUMENT_GOCODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/gocode/src"))
}

/// The modules the x/net fixture needs, by path.
const X_NET_MODULES: [&str; 2] = ["golang.org/x/net", "golang.org/x/text"];

/// Whether golang.org/x/net's source is installed. When it is not: panics under `CI=true`,
/// otherwise prints a note and returns false so the test can return early.
pub fn require_x_net() -> bool {
    let dir = gocode_dir();
    let missing: Vec<&str> = X_NET_MODULES
        .into_iter()
        .filter(|m| !dir.join(m).join("go.mod").is_file())
        .collect();
    if missing.is_empty() {
        return true;
    }
    super::skip::skip(&format!(
        "{} not installed in {}; run scripts/setup.sh (apt-get install golang-golang-x-net-dev \
         golang-golang-x-text-dev)",
        missing.join(" and "),
        dir.display()
    ));
    false
}

fn cache_dir() -> PathBuf {
    let base = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    base.join("go-fixtures")
}

/// The `.go` files of the fixture's directories, in a stable order.
fn source_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|dir| {
            std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .map(|e| e.expect("readable fixture directory").path())
        })
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "go"))
        .collect();
    files.sort();
    files
}

/// FNV-1a over the fixture's file names and contents: a stable key for the build cache.
fn source_hash(files: &[PathBuf], variant: Variant) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for flag in variant.build_flags() {
        feed(flag.as_bytes());
    }
    feed(variant.cgo().as_bytes());
    for file in files {
        feed(file.file_name().unwrap().as_encoded_bytes());
        feed(&std::fs::read(file).expect("readable fixture file"));
    }
    if variant.uses_x_net() {
        // Another release of the x/net package is another fixture.
        let transport = gocode_dir().join("golang.org/x/net/http2/transport.go");
        feed(&std::fs::read(&transport).unwrap_or_default());
    }
    hash
}

/// Builds (or reuses) a fixture with Go `version` (`"1.24"`, `"1.24.11"` or `"newest"`) and
/// returns the executable's path. Panics when the toolchain is missing (call [`require_go`]
/// first) or the build fails.
pub fn build_go_server(version: &str, variant: Variant) -> PathBuf {
    let toolchain = require_go(version).unwrap_or_else(|| {
        panic!(
            "Go {version} is not installed; run scripts/setup.sh (or check with require_go first)"
        )
    });
    let sources = source_files(&variant.source_dirs());
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).expect("create the fixture cache directory");
    let output = cache.join(format!(
        "{}-go{}-{:016x}",
        variant.label(),
        toolchain.version,
        source_hash(&sources, variant)
    ));
    if output.is_file() {
        return output;
    }

    // Build in a private copy with its own go.mod: `go mod init` writes this toolchain's version,
    // so the binary gets this release's default GODEBUG settings (e.g. the Go 1.22 ServeMux).
    let work = tempfile::tempdir_in(&cache).expect("create a fixture build directory");
    for path in &sources {
        std::fs::copy(path, work.path().join(path.file_name().unwrap()))
            .expect("copy fixture source");
    }
    let go = |args: &[&str]| {
        let out = Command::new(&toolchain.go)
            .args(args)
            .current_dir(work.path())
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "-mod=mod")
            .env("GOCACHE", cache.join("gocache"))
            .env("GOPATH", cache.join("gopath"))
            .env("GOPROXY", "off")
            // Ignore the developer's `go env -w` settings and any go.work above the cache.
            .env("GOENV", "off")
            .env("GOWORK", "off")
            .env("CGO_ENABLED", variant.cgo())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", toolchain.go.display()));
        assert!(
            out.status.success(),
            "go {} failed with Go {}:\n{}",
            args.join(" "),
            toolchain.version,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    go(&["mod", "init", "fixture"]);
    if variant.uses_x_net() {
        // The installed source stands in for the module proxy; the version is a placeholder the
        // replacement overrides.
        let mut edit = vec!["mod".to_string(), "edit".into()];
        for module in X_NET_MODULES {
            let dir = gocode_dir().join(module);
            edit.push(format!("-require={module}@v0.0.0"));
            edit.push(format!("-replace={module}={}", dir.display()));
        }
        go(&edit.iter().map(String::as_str).collect::<Vec<_>>());
    }
    // Build to a unique name, then rename: concurrent tests building the same fixture each
    // produce a complete file, and the cache never holds a partial one.
    let partial = work.path().join("fixture.bin");
    let partial_arg = partial.to_str().expect("UTF-8 cache path");
    let mut args = vec!["build", "-o", partial_arg];
    args.extend_from_slice(variant.build_flags());
    args.push(".");
    go(&args);
    std::fs::rename(&partial, &output).expect("move the fixture into the cache");
    output
}

/// A running fixture server; killed when dropped.
pub struct GoServer {
    child: Child,
    pub pid: u32,
    pub http_port: u16,
    pub https_port: u16,
}

impl GoServer {
    /// Starts `binary` on ephemeral loopback ports.
    pub fn start(binary: &Path) -> GoServer {
        Self::start_with_args(binary, &[])
    }

    /// Starts `binary` with extra arguments (e.g. `["-http", "127.0.0.1:8080"]`) and waits for
    /// its `LISTENING http=PORT https=PORT` line.
    pub fn start_with_args(binary: &Path, args: &[&str]) -> GoServer {
        Self::start_with_env(binary, args, &[])
    }

    /// Starts `binary` with extra arguments and environment variables (e.g. `OTEL_SERVICE_NAME`).
    pub fn start_with_env(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> GoServer {
        // A copy made just before may still be open for writing in a child that another test's
        // thread forked meanwhile (until that child execs): ETXTBSY, gone a moment later.
        let mut attempts = 0;
        let mut child = loop {
            let started = Command::new(binary)
                .args(args)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn();
            match started {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => {
                    break other
                        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()))
                }
            }
        };
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, first_line) = mpsc::channel();
        // The reader keeps draining stdout after the first line so the server never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // After the first line nobody listens; keep reading anyway to drain the pipe.
                let _ = lines.send(line);
            }
        });
        let mut server = GoServer {
            child,
            pid,
            http_port: 0,
            https_port: 0,
        };
        let line = match first_line.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let status = server.child.try_wait().ok().flatten();
                panic!(
                    "{} did not print its LISTENING line within {START_TIMEOUT:?} ({e}; exit status {status:?})",
                    binary.display()
                );
            }
        };
        let (http, https) = parse_listening(&line)
            .unwrap_or_else(|| panic!("unexpected first line from {}: {line:?}", binary.display()));
        server.http_port = http;
        server.https_port = https;
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// `https://127.0.0.1:PORT` (self-signed certificate).
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https_port)
    }
}

impl Drop for GoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `LISTENING http=PORT https=PORT`.
pub fn parse_listening(line: &str) -> Option<(u16, u16)> {
    let rest = line.trim_end().strip_prefix("LISTENING ")?;
    let mut http = None;
    let mut https = None;
    for field in rest.split(' ') {
        match field.split_once('=')? {
            ("http", port) => http = Some(port.parse().ok()?),
            ("https", port) => https = Some(port.parse().ok()?),
            _ => return None,
        }
    }
    Some((http?, https?))
}
