//! What the agent needs to know about one Go executable before it can attach uprobes to it:
//! the Go version, where `net/http.serverHandler.ServeHTTP` starts and where net/http ends a
//! request, and the struct field offsets and itab addresses the probes read through
//! ([`GoOffsets`]).
//!
//! Everything comes from the file alone: the process is never touched. What a build may drop
//! (ELF symbols, DWARF, `.go.buildinfo`) is used when present; what every Go binary keeps (the
//! function table `.gopclntab`, the runtime's version string and type data) stands in for it,
//! and a table of struct layouts per Go release stands in for DWARF. [`Sources`] says which
//! served. One call reads the file once and walks each table once, collecting only the few names
//! it needs.
//!
//! Files: `buildinfo` (Go version), `symbols` (the wanted names, from ELF symbols or the function
//! table; file offsets), `runtime_data` (what every Go binary keeps), `probe_points` (entry and
//! RET offsets, direct calls), `request_end` (where a request ends), `dwarf` (struct field offsets
//! and runtime type descriptors), `layouts` (struct layouts per Go release), `itabs` (itab
//! addresses), `offsets` (assembles [`GoOffsets`]).

mod buildinfo;
mod dwarf;
mod itabs;
pub mod layouts;
mod offsets;
mod probe_points;
mod report;
mod request_end;
mod runtime_data;
mod symbols;

use std::fmt;
use std::path::{Path, PathBuf};

use http_autoinstrument_common::GoOffsets;
use object::read::elf::{ProgramHeader, SectionHeader};
use object::{Object, ObjectSection};

pub use buildinfo::parse_go_version;
pub use offsets::WANTED as WANTED_FIELDS;
pub use report::{print_layouts, print_report, report};
pub use request_end::RequestEnd;

/// Go releases whose layouts this module knows (and the tests check), on linux/amd64. A newer
/// release is traced when its binary has DWARF, which gives its layouts.
pub const SUPPORTED_GO: std::ops::RangeInclusive<GoVersion> =
    GoVersion::new(1, 21, 0)..=GoVersion::new(1, 27, u32::MAX);

/// The symbol every traced request goes through, for HTTP/1.x and HTTP/2 alike.
pub const SERVE_HTTP_SYMBOL: &str = "net/http.serverHandler.ServeHTTP";
/// Called when a goroutine panics; the probes use it to mark requests whose handler panicked.
pub const GOPANIC_SYMBOL: &str = "runtime.gopanic";
/// Every request of net/http's client goes through it (HTTP/1.1, HTTPS, the bundled HTTP/2).
pub const ROUND_TRIP_SYMBOL: &str = "net/http.(*Transport).roundTrip";
/// What an `http.Client` (or any caller through `http.RoundTripper`) calls on
/// golang.org/x/net/http2's own Transport. Not `RoundTripOpt`, which it calls: net/http's
/// roundTrip reaches x/net's `RoundTripOpt` for every request of a transport set up with
/// `http2.ConfigureTransport`, but `(*Transport).RoundTrip` only for the first request of each
/// new connection (x/net's `noDialH2RoundTripper` has `RoundTrip` inlined), so such calls keep
/// their two hits. Callers that have `RoundTrip` inlined into them (a call on the concrete
/// type) or call `RoundTripOpt` themselves are not seen.
pub const X_NET_ROUND_TRIP_SYMBOL: &str = "golang.org/x/net/http2.(*Transport).RoundTrip";
/// An HTTP/1.x client request's writer, and the header writer it calls first with the request's
/// own headers: the probe that adds `traceparent` sits on that call.
pub const REQUEST_WRITE_SYMBOL: &str = "net/http.(*Request).write";
pub const WRITE_SUBSET_SYMBOL: &str = "net/http.Header.writeSubset";
/// An HTTP/2 client request's header writer, by Go release (the bundled copy of x/net/http2 until
/// Go 1.26, net/http/internal/http2 from 1.27), and the `Flush` it ends with: where the probe
/// adds `traceparent` to the request's header block.
pub const H2_WRITE_HEADERS_SYMBOLS: [&str; 2] = [
    "net/http.(*http2ClientConn).writeHeaders",
    "net/http/internal/http2.(*ClientConn).writeHeaders",
];
/// golang.org/x/net/http2's own copy of that writer, for requests made with its Transport.
pub const X_NET_H2_WRITE_HEADERS_SYMBOL: &str = "golang.org/x/net/http2.(*ClientConn).writeHeaders";
pub const BUFIO_FLUSH_SYMBOL: &str = "bufio.(*Writer).Flush";

/// A Go release, e.g. `go1.24.11` (release candidates and betas count as patch 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl GoVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// True from `go{major}.{minor}.0` on.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "go{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Text of the supported range for error messages, derived from [`SUPPORTED_GO`].
pub fn supported_go_text() -> String {
    let (lo, hi) = (SUPPORTED_GO.start(), SUPPORTED_GO.end());
    format!(
        "go{}.{} through go{}.{} on linux/amd64",
        lo.major, lo.minor, hi.major, hi.minor
    )
}

/// One function of the binary, located for uprobes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    /// Link-time virtual address (before any PIE load bias).
    pub address: u64,
    pub size: u64,
    /// File offset of the function's first byte.
    pub file_offset: u64,
    /// Where the entry probe goes, relative to the function start (see `probe_points`).
    pub entry_offset: u64,
    /// Offsets of every RET instruction, relative to the function start.
    pub return_offsets: Vec<u64>,
}

/// Where each fact about a binary came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sources {
    pub version: VersionSource,
    pub functions: FunctionSource,
    pub layouts: LayoutSource,
    /// For each of the itabs the probes compare with (`itabs::ITABS`).
    pub itabs: [ItabSource; itabs::ITAB_COUNT],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSource {
    /// The `.go.buildinfo` section.
    BuildInfo,
    /// `runtime.buildVersion`, in a build without `.go.buildinfo`.
    Runtime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionSource {
    /// The ELF symbol table.
    Symbols,
    /// Go's function table, in a binary without ELF symbols.
    Pclntab,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutSource {
    Dwarf,
    /// The table of layouts per Go release, in a binary without DWARF.
    Table,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItabSource {
    /// A `go:itab.*` ELF symbol.
    Symbol,
    /// Found by the contents of the type descriptors DWARF names.
    DwarfTypes,
    /// The runtime's interface table (`.itablink`, or the module data).
    RuntimeData,
    NotFound,
}

impl fmt::Display for VersionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VersionSource::BuildInfo => "build info (.go.buildinfo)",
            VersionSource::Runtime => "runtime.buildVersion (no .go.buildinfo)",
        })
    }
}

impl fmt::Display for FunctionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FunctionSource::Symbols => "ELF symbols (.symtab)",
            FunctionSource::Pclntab => "Go function table (.gopclntab; no .symtab)",
        })
    }
}

impl fmt::Display for LayoutSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutSource::Dwarf => f.write_str("DWARF"),
            LayoutSource::Table => write!(
                f,
                "table of layouts per Go release (no DWARF; go_layouts.toml, through go{}.{}.x)",
                layouts::newest().major,
                layouts::newest().minor
            ),
        }
    }
}

impl fmt::Display for ItabSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItabSource::Symbol => "go:itab symbol",
            ItabSource::DwarfTypes => "type descriptors named by DWARF",
            ItabSource::RuntimeData => "runtime interface table",
            ItabSource::NotFound => "not found",
        })
    }
}

/// The result of inspecting one Go executable.
#[derive(Clone, Debug)]
pub struct GoBinary {
    pub path: PathBuf,
    pub go_version: GoVersion,
    pub sources: Sources,
    /// `ET_DYN` executable: the itab addresses in `offsets` need the load bias added.
    pub is_pie: bool,
    /// Link-time virtual address of the lowest `PT_LOAD` segment. Go links PIE executables at
    /// 0x400000 too (not 0), so the load bias of a PIE process is the start of the mapping of file
    /// offset 0 (from /proc/PID/maps) minus this value; for non-PIE it is 0.
    pub first_load_vaddr: u64,
    /// `net/http.serverHandler.ServeHTTP`: the entry probe, and the request-end probe when
    /// `request_end` says RETs.
    pub serve_http: Function,
    /// Where the request-end probe goes.
    pub request_end: RequestEnd,
    /// `runtime.gopanic`; only its entry is used, so `return_offsets` is left empty.
    pub gopanic: Option<Function>,
    /// `(*Transport).roundTrip`, with its RETs: `None` in a program that makes no HTTP calls.
    pub round_trip: Option<Function>,
    /// golang.org/x/net/http2's `(*Transport).RoundTrip`, with its RETs: `None` when the program
    /// does not link it.
    pub x_net_round_trip: Option<Function>,
    /// `(*Request).write`, its `entry_offset` set to its call of `Header.writeSubset` with the
    /// request's headers: where the probe adds `traceparent` (HTTP/1.x). `None` when not found.
    pub header_write: Option<Function>,
    /// `(*ClientConn).writeHeaders`, its `entry_offset` set to its call of `(*bufio.Writer).Flush`:
    /// where the probe adds `traceparent` (HTTP/2). `None` when not found.
    pub h2_header_write: Option<Function>,
    /// The same in golang.org/x/net/http2's `(*ClientConn).writeHeaders`: `None` when the program
    /// does not link x/net's Transport.
    pub x_net_h2_header_write: Option<Function>,
    /// The type names of `error` values by their itab's link-time address (what a failed
    /// client call's `error.type` says).
    pub error_types: std::collections::HashMap<u64, String>,
    /// Field offsets; the `*_itab` fields are link-time addresses (`ABSENT` when not in the binary).
    pub offsets: GoOffsets,
}

/// Why a binary cannot be traced. Every message names the binary and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{path}: the agent failed while inspecting it ({message}); please report it (the agent goes on with other processes)")]
    Internal { path: PathBuf, message: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an ELF executable ({reason}); point the agent at a Go program built for linux")]
    NotElf { path: PathBuf, reason: String },
    #[error("{path} is a damaged or truncated ELF file ({what}); rebuild or reinstall it")]
    Damaged { path: PathBuf, what: String },
    #[error("{path} is a {arch} binary; only x86_64 (amd64) Go programs can be traced")]
    NotAmd64 { path: PathBuf, arch: String },
    #[error("{path} is not a Go program (no Go function table .gopclntab, no .go.buildinfo); only Go net/http servers can be traced")]
    NotGo { path: PathBuf },
    #[error("{path} has an unreadable Go build info ({reason}); rebuild it with a standard Go toolchain ({supported})", supported = supported_go_text())]
    BadBuildInfo { path: PathBuf, reason: String },
    #[error("{path} is a Go program whose Go version cannot be found (no .go.buildinfo, no runtime.buildVersion); please report it with `http-autoinstrument inspect` of the binary")]
    NoGoVersion { path: PathBuf },
    #[error("{path} was built with {version}, newer than the newest Go release whose layouts this agent knows (go{major}.{minor}.x), and has no DWARF to read them from (built with -ldflags=-w or -s): upgrade the agent, or build the service without -w/-s", major = .newest.major, minor = .newest.minor)]
    NewerThanTable {
        path: PathBuf,
        version: GoVersion,
        newest: GoVersion,
    },
    #[error("{path} was built with {version}, which is not supported (supported: {supported}); rebuild it with a supported Go release", supported = supported_go_text())]
    UnsupportedGoVersion { path: PathBuf, version: String },
    #[error("{path} ({go_version}) does not use net/http's server (no {SERVE_HTTP_SYMBOL} function); only net/http servers can be traced")]
    NoHttpServer {
        path: PathBuf,
        go_version: GoVersion,
    },
    #[error("{path} ({go_version}): DWARF has no field {field} in type {type_name}; this Go release's layout is not supported (supported: {supported}), please report it", supported = supported_go_text())]
    MissingField {
        path: PathBuf,
        go_version: GoVersion,
        type_name: String,
        field: String,
    },
    #[error("{path} ({go_version}): DWARF has no type {type_name}; this Go release's layout is not supported (supported: {supported}), please report it", supported = supported_go_text())]
    MissingType {
        path: PathBuf,
        go_version: GoVersion,
        type_name: String,
    },
    #[error("{path} ({go_version}): {what}; this Go release's layout is not supported (supported: {supported}), please report it", supported = supported_go_text())]
    UnsupportedLayout {
        path: PathBuf,
        go_version: GoVersion,
        what: String,
    },
    #[error("{path} ({go_version}): {what}; the file looks damaged or truncated, rebuild it")]
    Malformed {
        path: PathBuf,
        go_version: GoVersion,
        what: String,
    },
}

/// Reads and inspects the executable at `path`.
pub fn inspect_binary(path: &Path) -> Result<GoBinary, InspectError> {
    let data = std::fs::read(path).map_err(|source| InspectError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    inspect_bytes(path, &data)
}

/// [`inspect_bytes`], with a panic in the parsers of one odd file reported as that file's error
/// rather than taking down the agent's process tracker, which inspects every program it meets.
pub fn inspect_bytes_guarded(path: &Path, data: &[u8]) -> Result<GoBinary, InspectError> {
    std::panic::catch_unwind(|| inspect_bytes(path, data)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(InspectError::Internal {
            path: path.to_path_buf(),
            message,
        })
    })
}

/// Inspects an executable already in memory; `path` is only used in the result and in errors.
pub fn inspect_bytes(path: &Path, data: &[u8]) -> Result<GoBinary, InspectError> {
    let elf = parse_elf(path, data)?;
    let path_buf = || path.to_path_buf();
    // Parsed only when what a build may drop is missing: symbols, build info or itab symbols.
    let runtime = std::cell::OnceCell::new();
    let runtime_data = || {
        runtime
            .get_or_init(|| runtime_data::RuntimeData::parse(data))
            .as_ref()
    };

    let (version_text, version_source) = match elf.section_by_name(".go.buildinfo") {
        Some(section) => {
            let bytes = section.data().map_err(|e| InspectError::BadBuildInfo {
                path: path_buf(),
                reason: e.to_string(),
            })?;
            let text =
                buildinfo::version_string(bytes).map_err(|reason| InspectError::BadBuildInfo {
                    path: path_buf(),
                    reason,
                })?;
            (text, VersionSource::BuildInfo)
        }
        None => {
            // Go's linker names the section `.gopclntab`, or `.data.rel.ro.gopclntab` when it
            // links a PIE itself; looking no further keeps the many non-Go programs a scan meets
            // cheap to turn down.
            let is_go = elf
                .sections()
                .any(|s| s.name().is_ok_and(|n| n.ends_with(".gopclntab")))
                && runtime_data().is_some();
            if !is_go {
                return Err(InspectError::NotGo { path: path_buf() });
            }
            let text = buildinfo::runtime_version(&elf)
                .ok_or_else(|| InspectError::NoGoVersion { path: path_buf() })?;
            (text, VersionSource::Runtime)
        }
    };
    let go_version = parse_go_version(&version_text)
        .filter(|v| v >= SUPPORTED_GO.start())
        .ok_or_else(|| InspectError::UnsupportedGoVersion {
            path: path_buf(),
            version: version_text.clone(),
        })?;

    let malformed = |what: String| InspectError::Malformed {
        path: path_buf(),
        go_version,
        what,
    };

    let has_dwarf = elf.section_by_name(".debug_info").is_some();
    if !has_dwarf && go_version > layouts::newest() {
        return Err(InspectError::NewerThanTable {
            path: path_buf(),
            version: go_version,
            newest: layouts::newest(),
        });
    }

    let mut found = symbols::find_symbols(&elf);
    let mut function_source = FunctionSource::Symbols;
    if found.serve_http.is_none() {
        if let Some(runtime) = runtime_data() {
            let mut from_table = symbols::FoundSymbols::default();
            if runtime.offer_functions(&mut from_table) > 0 {
                // The itab symbols of a binary that has some are still worth having.
                from_table.itabs = found.itabs;
                found = from_table;
                function_source = FunctionSource::Pclntab;
            }
        }
    }
    let serve_http = found.serve_http.ok_or_else(|| InspectError::NoHttpServer {
        path: path_buf(),
        go_version,
    })?;
    let serve_http_code = symbols::function_bytes(&elf, &serve_http).map_err(&malformed)?;
    let return_offsets = probe_points::return_offsets(serve_http.address, serve_http_code);
    if return_offsets.is_empty() {
        return Err(malformed(format!(
            "no RET instruction in {SERVE_HTTP_SYMBOL}"
        )));
    }
    let serve_http = Function {
        return_offsets,
        ..probe_function(&elf, SERVE_HTTP_SYMBOL, &serve_http).map_err(&malformed)?
    };
    let gopanic = match found.gopanic {
        Some(sym) => Some(probe_function(&elf, GOPANIC_SYMBOL, &sym).map_err(&malformed)?),
        None => None,
    };
    let with_returns = |name: &str,
                        sym: Option<symbols::FunctionSymbol>|
     -> Result<Option<Function>, InspectError> {
        match sym {
            Some(sym) => {
                let code = symbols::function_bytes(&elf, &sym).map_err(&malformed)?;
                let return_offsets = probe_points::return_offsets(sym.address, code);
                Ok(Some(Function {
                    return_offsets,
                    ..probe_function(&elf, name, &sym).map_err(&malformed)?
                })
                .filter(|f| !f.return_offsets.is_empty()))
            }
            None => Ok(None),
        }
    };
    let round_trip = with_returns(ROUND_TRIP_SYMBOL, found.round_trip)?;
    let x_net_round_trip = with_returns(X_NET_ROUND_TRIP_SYMBOL, found.x_net_round_trip)?;

    // A function's first call of another, as a probe point (`entry_offset`).
    let call_point = |caller: Option<(&'static str, symbols::FunctionSymbol)>,
                      callee: Option<symbols::FunctionSymbol>|
     -> Result<Option<Function>, InspectError> {
        let (Some((name, caller)), Some(callee)) = (caller, callee) else {
            return Ok(None);
        };
        let code = symbols::function_bytes(&elf, &caller).map_err(&malformed)?;
        match probe_points::first_call(caller.address, code, callee.address) {
            Some(call) => Ok(Some(Function {
                entry_offset: call,
                ..probe_function(&elf, name, &caller).map_err(&malformed)?
            })),
            None => Ok(None),
        }
    };
    let header_write = call_point(
        found.request_write.map(|f| (REQUEST_WRITE_SYMBOL, f)),
        found.write_subset,
    )?;
    let h2_header_write = call_point(found.h2_write_headers, found.bufio_flush)?;
    let x_net_h2_header_write = call_point(
        (found.x_net_h2_write_headers).map(|f| (X_NET_H2_WRITE_HEADERS_SYMBOL, f)),
        found.bufio_flush,
    )?;

    let wanted_structs: Vec<&'static str> = offsets::wanted_structs().collect();
    let runtime_type_names: Vec<&'static str> = itabs::runtime_type_names().collect();
    let (types, layout_source) = if has_dwarf {
        let types = dwarf::collect_types(&elf, &wanted_structs, &runtime_type_names).map_err(
            |e| match e {
                dwarf::DwarfError::Missing(section) => {
                    malformed(format!("DWARF without its {section} section"))
                }
                dwarf::DwarfError::Parse(what) => malformed(format!("bad DWARF: {what}")),
            },
        )?;
        (types, LayoutSource::Dwarf)
    } else {
        let types =
            layouts::for_version(go_version).ok_or_else(|| InspectError::NewerThanTable {
                path: path_buf(),
                version: go_version,
                newest: layouts::newest(),
            })?;
        (types, LayoutSource::Table)
    };

    let mut itab_addresses = found.itabs;
    let mut itab_sources = itab_addresses.0.map(|a| match a {
        Some(_) => ItabSource::Symbol,
        None => ItabSource::NotFound,
    });
    let mut note = |addresses: &itabs::ItabAddresses, source: ItabSource| {
        for (slot, found) in itab_sources.iter_mut().enumerate() {
            if *found == ItabSource::NotFound && addresses.0[slot].is_some() {
                *found = source;
            }
        }
    };
    if let Some(runtime_types) = found.runtime_types {
        itabs::fill_by_scan(
            &elf,
            runtime_types,
            |name| types.runtime_types.get(name).copied(),
            &mut itab_addresses,
        );
        note(&itab_addresses, ItabSource::DwarfTypes);
    }
    if itab_addresses.0.iter().any(Option::is_none) {
        if let Some(runtime) = runtime_data() {
            runtime.fill_itabs(&mut itab_addresses);
            note(&itab_addresses, ItabSource::RuntimeData);
        }
    }

    let offsets = offsets::assemble(&types, &itab_addresses).map_err(|e| match e {
        offsets::OffsetError::MissingType(type_name) => InspectError::MissingType {
            path: path_buf(),
            go_version,
            type_name,
        },
        offsets::OffsetError::MissingField { type_name, field } => InspectError::MissingField {
            path: path_buf(),
            go_version,
            type_name,
            field,
        },
        offsets::OffsetError::UnsupportedLayout(what) => InspectError::UnsupportedLayout {
            path: path_buf(),
            go_version,
            what,
        },
    })?;

    let makes_calls = round_trip.is_some() || x_net_round_trip.is_some();
    let error_types = match runtime_data() {
        Some(runtime) if makes_calls => runtime.error_types(),
        _ => Default::default(),
    };

    // From the HTTP/2 writer's itab, or from its server's code when the itab was not found (its
    // requests would otherwise enter and never end; with the code and no itab they end without
    // the writer's fields).
    let serves_http2 = offsets.h2_writer_itab != http_autoinstrument_common::ABSENT
        || found.h2_handler_done.is_some()
        || !found.h2_run_handler.is_empty();
    let request_end = request_end::locate(&elf, &found, serves_http2).map_err(&malformed)?;

    Ok(GoBinary {
        path: path_buf(),
        go_version,
        sources: Sources {
            version: version_source,
            functions: function_source,
            layouts: layout_source,
            itabs: itab_sources,
        },
        is_pie: elf.kind() == object::ObjectKind::Dynamic,
        first_load_vaddr: first_load_vaddr(&elf),
        serve_http,
        request_end,
        gopanic,
        round_trip,
        x_net_round_trip,
        header_write,
        h2_header_write,
        x_net_h2_header_write,
        error_types,
        offsets,
    })
}

/// A struct's name and its fields with their offsets.
pub type StructLayout = (String, Vec<(String, u64)>);

/// A function's name, address and size.
pub type FunctionBounds = (String, u64, u64);

/// The [`WANTED_FIELDS`] of the struct layouts in the binary's DWARF, as the table of layouts per
/// Go release records them (for `scripts/gen-go-layouts.py` and the test that checks the table).
pub fn dwarf_layouts(path: &Path, data: &[u8]) -> Result<Vec<StructLayout>, InspectError> {
    let elf = parse_elf(path, data)?;
    let wanted: Vec<&'static str> = offsets::wanted_structs().collect();
    let types = dwarf::collect_types(&elf, &wanted, &[]).map_err(|e| InspectError::Damaged {
        path: path.to_path_buf(),
        what: match e {
            dwarf::DwarfError::Missing(section) => format!("no DWARF ({section})"),
            dwarf::DwarfError::Parse(what) => format!("bad DWARF: {what}"),
        },
    })?;
    let mut out = Vec::new();
    for (name, fields) in offsets::WANTED {
        let Some(members) = types.structs.get(name) else {
            continue;
        };
        let mut kept: Vec<(String, u64)> = members
            .iter()
            .filter(|(field, _)| fields.contains(&field.as_str()))
            .cloned()
            .collect();
        kept.sort();
        out.push((name.to_string(), kept));
    }
    Ok(out)
}

impl GoBinary {
    /// Where the request-end probe goes: each function, and the offset in it.
    pub fn request_end_points(&self) -> impl Iterator<Item = (&Function, u64)> {
        let (after_handler, returns): (&[Function], &[u64]) = match &self.request_end {
            RequestEnd::AfterHandler(functions) => (functions, &[]),
            RequestEnd::ServeHttpReturns { .. } => (&[], &self.serve_http.return_offsets),
        };
        (after_handler.iter().map(|f| (f, f.entry_offset)))
            .chain(returns.iter().map(|&r| (&self.serve_http, r)))
    }

    /// Where the probe that writes `traceparent` into client requests goes: `header_write`, only
    /// when every layout that write relies on is known for this binary.
    pub fn traceparent_write_point(&self) -> Option<&Function> {
        self.header_write
            .as_ref()
            .filter(|_| self.offsets.request_writer_known())
    }

    /// As [`traceparent_write_point`](Self::traceparent_write_point), for HTTP/2 requests:
    /// `h2_header_write` and `x_net_h2_header_write`, only when every layout that write relies on
    /// is known (`GoOffsets::h2_request_writer_known`).
    pub fn h2_traceparent_write_points(&self) -> impl Iterator<Item = &Function> {
        let known = self.offsets.h2_request_writer_known();
        (self.h2_header_write.iter())
            .chain(&self.x_net_h2_header_write)
            .filter(move |_| known)
    }

    /// File offsets of the request-end probe.
    pub fn request_end_offsets(&self) -> Vec<u64> {
        (self.request_end_points())
            .map(|(f, at)| f.file_offset + at)
            .collect()
    }
}

/// A function whose entry is probed (`return_offsets` left empty).
fn probe_function(
    elf: &Elf<'_>,
    name: &str,
    symbol: &symbols::FunctionSymbol,
) -> Result<Function, String> {
    Ok(Function {
        name: name.to_string(),
        address: symbol.address,
        size: symbol.size,
        file_offset: symbols::file_offset(elf, symbol.address)?,
        entry_offset: probe_points::entry_offset(
            symbol.address,
            symbols::function_bytes(elf, symbol)?,
        ),
        return_offsets: Vec::new(),
    })
}

fn first_load_vaddr(elf: &Elf<'_>) -> u64 {
    let endian = elf.endian();
    elf.elf_program_headers()
        .iter()
        .filter(|ph| ph.p_type(endian) == object::elf::PT_LOAD)
        .map(|ph| ph.p_vaddr(endian))
        .min()
        .unwrap_or(0)
}

type Elf<'data> = object::read::elf::ElfFile64<'data, object::Endianness, &'data [u8]>;

fn parse_elf<'data>(path: &Path, data: &'data [u8]) -> Result<Elf<'data>, InspectError> {
    let not_elf = |reason: String| InspectError::NotElf {
        path: path.to_path_buf(),
        reason,
    };
    if !data.starts_with(b"\x7fELF") {
        return Err(not_elf("no ELF magic number".to_string()));
    }
    let damaged = |what: String| InspectError::Damaged {
        path: path.to_path_buf(),
        what,
    };
    // Check the machine before asking for a 64-bit parse, so a 32-bit x86 or ARM binary gets the
    // "not amd64" message rather than a parse error.
    let file = object::File::parse(data).map_err(|e| damaged(e.to_string()))?;
    if file.architecture() != object::Architecture::X86_64 {
        return Err(InspectError::NotAmd64 {
            path: path.to_path_buf(),
            arch: format!("{:?}", file.architecture()),
        });
    }
    let elf = Elf::parse(data).map_err(|e| damaged(e.to_string()))?;
    // A truncated copy can still parse (the headers are at the start) while the sections at the
    // end, among them the section name table, are missing: say so instead of "not a Go program".
    let endian = elf.endian();
    for (index, header) in elf.elf_section_table().iter().enumerate() {
        if header.sh_type(endian) == object::elf::SHT_NOBITS {
            continue;
        }
        let end = header.sh_offset(endian).checked_add(header.sh_size(endian));
        if end.is_none_or(|end| end > data.len() as u64) {
            return Err(damaged(format!(
                "section {index} ends past the end of the file ({} bytes)",
                data.len()
            )));
        }
    }
    Ok(elf)
}

/// The functions the probes need as the ELF symbol table and as Go's function table give them,
/// each as (name, address, size), for a binary that has both.
///
/// A diagnostic: tests check that the function table agrees with the symbols.
#[doc(hidden)]
pub fn probed_functions_by_source(
    path: &Path,
    data: &[u8],
) -> Result<[Vec<FunctionBounds>; 2], InspectError> {
    let elf = parse_elf(path, data)?;
    let from_symbols = symbols::find_symbols(&elf);
    let mut from_table = symbols::FoundSymbols::default();
    if let Some(runtime) = runtime_data::RuntimeData::parse(data) {
        runtime.offer_functions(&mut from_table);
    }
    Ok([from_symbols.functions(), from_table.functions()])
}

/// Itab addresses found only in the runtime's interface table, as for a binary without ELF
/// symbols or DWARF; in the order response, HTTP/2 writer, `*tls.Conn`, `*net.TCPConn`.
///
/// A diagnostic: tests compare it with the symbol addresses of Go releases that have both.
#[doc(hidden)]
pub fn itab_addresses_from_runtime_data(data: &[u8]) -> [Option<u64>; itabs::ITAB_COUNT] {
    let mut addresses = itabs::ItabAddresses::default();
    if let Some(runtime) = runtime_data::RuntimeData::parse(data) {
        runtime.fill_itabs(&mut addresses);
    }
    addresses.0
}

/// Itab addresses found only by scanning the type descriptors (the path Go 1.27 binaries take),
/// ignoring `go:itab.*` symbols; in the order response, HTTP/2 writer, `*tls.Conn`, `*net.TCPConn`.
///
/// A diagnostic: tests compare it with the symbol addresses of Go releases that have both.
#[doc(hidden)]
pub fn itab_addresses_by_scan(
    path: &Path,
    data: &[u8],
) -> Result<[Option<u64>; itabs::ITAB_COUNT], InspectError> {
    let elf = parse_elf(path, data)?;
    let found = symbols::find_symbols(&elf);
    let runtime_type_names: Vec<&'static str> = itabs::runtime_type_names().collect();
    let types = dwarf::collect_types(&elf, &[], &runtime_type_names).map_err(|e| {
        InspectError::Damaged {
            path: path.to_path_buf(),
            what: match e {
                dwarf::DwarfError::Missing(section) => format!("no DWARF ({section})"),
                dwarf::DwarfError::Parse(what) => format!("bad DWARF: {what}"),
            },
        }
    })?;
    let mut addresses = itabs::ItabAddresses::default();
    if let Some(runtime_types) = found.runtime_types {
        itabs::fill_by_scan(
            &elf,
            runtime_types,
            |name| types.runtime_types.get(name).copied(),
            &mut addresses,
        );
    }
    Ok(addresses.0)
}
