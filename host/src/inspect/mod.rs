//! What the agent needs to know about one Go executable before it can attach uprobes to it:
//! the Go version, where `net/http.serverHandler.ServeHTTP` starts and where net/http ends a
//! request, and the struct field offsets and itab addresses the probes read through
//! ([`GoOffsets`]).
//!
//! Everything comes from the file alone (ELF symbols, `.go.buildinfo`, DWARF, machine code): the
//! process is never touched. One call reads the file once, walks the symbol table once and the
//! DWARF type units once, collecting only the few names it needs.
//!
//! Files: `buildinfo` (Go version), `symbols` (ELF symbols, PIE, file offsets), `probe_points`
//! (entry and RET offsets, direct calls), `request_end` (where a request ends), `dwarf` (struct
//! field offsets and runtime type descriptors), `itabs` (itab addresses of binaries whose symbol
//! table has no `go:itab.*` symbols), `offsets` (assembles [`GoOffsets`]).

mod buildinfo;
mod dwarf;
mod itabs;
mod offsets;
mod probe_points;
mod report;
mod request_end;
mod symbols;

use std::fmt;
use std::path::{Path, PathBuf};

use http_autoinstrument_common::GoOffsets;
use object::read::elf::{ProgramHeader, SectionHeader};
use object::{Object, ObjectSection};

pub use buildinfo::parse_go_version;
pub use report::{print_report, report};
pub use request_end::RequestEnd;

/// Go releases whose layouts this module knows (and the tests check), on linux/amd64.
pub const SUPPORTED_GO: std::ops::RangeInclusive<GoVersion> =
    GoVersion::new(1, 21, 0)..=GoVersion::new(1, 27, u32::MAX);

/// The symbol every traced request goes through, for HTTP/1.x and HTTP/2 alike.
pub const SERVE_HTTP_SYMBOL: &str = "net/http.serverHandler.ServeHTTP";
/// Called when a goroutine panics; the probes use it to mark requests whose handler panicked.
pub const GOPANIC_SYMBOL: &str = "runtime.gopanic";

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

/// The result of inspecting one Go executable.
#[derive(Clone, Debug)]
pub struct GoBinary {
    pub path: PathBuf,
    pub go_version: GoVersion,
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
    #[error("{path} is not a Go program (no .go.buildinfo section); only Go net/http servers can be traced")]
    NotGo { path: PathBuf },
    #[error("{path} has an unreadable Go build info ({reason}); rebuild it with a standard Go toolchain ({supported})", supported = supported_go_text())]
    BadBuildInfo { path: PathBuf, reason: String },
    #[error("{path} was built with {version}, which is not supported (supported: {supported}); rebuild it with a supported Go release", supported = supported_go_text())]
    UnsupportedGoVersion { path: PathBuf, version: String },
    #[error("{path} is stripped (no {missing}); rebuild without -ldflags=-s -w (keep the symbol table and DWARF) to trace it")]
    Stripped {
        path: PathBuf,
        missing: &'static str,
    },
    #[error("{path} ({go_version}) does not use net/http's server (no {SERVE_HTTP_SYMBOL} symbol); only net/http servers can be traced")]
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

    let build_info = elf
        .section_by_name(".go.buildinfo")
        .ok_or_else(|| InspectError::NotGo {
            path: path.to_path_buf(),
        })?;
    let build_info = build_info.data().map_err(|e| InspectError::BadBuildInfo {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let version_text =
        buildinfo::version_string(build_info).map_err(|reason| InspectError::BadBuildInfo {
            path: path.to_path_buf(),
            reason,
        })?;
    let go_version = parse_go_version(&version_text)
        .filter(|v| SUPPORTED_GO.contains(v))
        .ok_or_else(|| InspectError::UnsupportedGoVersion {
            path: path.to_path_buf(),
            version: version_text.clone(),
        })?;

    let malformed = |what: String| InspectError::Malformed {
        path: path.to_path_buf(),
        go_version,
        what,
    };

    if elf.section_by_name(".symtab").is_none() {
        return Err(InspectError::Stripped {
            path: path.to_path_buf(),
            missing: "ELF symbol table .symtab",
        });
    }
    if elf.section_by_name(".debug_info").is_none() {
        return Err(InspectError::Stripped {
            path: path.to_path_buf(),
            missing: "DWARF .debug_info",
        });
    }

    let found = symbols::find_symbols(&elf);
    let serve_http = found.serve_http.ok_or_else(|| InspectError::NoHttpServer {
        path: path.to_path_buf(),
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

    let runtime_type_names: Vec<&'static str> = itabs::runtime_type_names().collect();
    let types =
        dwarf::collect_types(&elf, offsets::WANTED_STRUCTS, &runtime_type_names).map_err(|e| {
            match e {
                dwarf::DwarfError::Missing(section) => InspectError::Stripped {
                    path: path.to_path_buf(),
                    missing: section,
                },
                dwarf::DwarfError::Parse(what) => malformed(format!("bad DWARF: {what}")),
            }
        })?;

    let offsets = offsets::assemble(&elf, &types, &found.itabs, found.runtime_types).map_err(
        |e| match e {
            offsets::OffsetError::MissingType(type_name) => InspectError::MissingType {
                path: path.to_path_buf(),
                go_version,
                type_name,
            },
            offsets::OffsetError::MissingField { type_name, field } => InspectError::MissingField {
                path: path.to_path_buf(),
                go_version,
                type_name,
                field,
            },
            offsets::OffsetError::UnsupportedLayout(what) => InspectError::UnsupportedLayout {
                path: path.to_path_buf(),
                go_version,
                what,
            },
        },
    )?;

    // From the HTTP/2 writer's itab, or from its server's code when the itab was not found (its
    // requests would otherwise enter and never end; with the code and no itab they end without
    // the writer's fields).
    let serves_http2 = offsets.h2_writer_itab != http_autoinstrument_common::ABSENT
        || found.h2_handler_done.is_some()
        || !found.h2_run_handler.is_empty();
    let request_end = request_end::locate(&elf, &found, serves_http2).map_err(&malformed)?;

    Ok(GoBinary {
        path: path.to_path_buf(),
        go_version,
        is_pie: elf.kind() == object::ObjectKind::Dynamic,
        first_load_vaddr: first_load_vaddr(&elf),
        serve_http,
        request_end,
        gopanic,
        offsets,
    })
}

impl GoBinary {
    /// File offsets of the request-end probe.
    pub fn request_end_offsets(&self) -> Vec<u64> {
        match &self.request_end {
            RequestEnd::AfterHandler(functions) => functions
                .iter()
                .map(|f| f.file_offset + f.entry_offset)
                .collect(),
            RequestEnd::ServeHttpReturns { .. } => self.serve_http_ret_offsets(),
        }
    }

    /// File offsets of ServeHTTP's RET instructions.
    pub fn serve_http_ret_offsets(&self) -> Vec<u64> {
        let f = &self.serve_http;
        f.return_offsets.iter().map(|r| f.file_offset + r).collect()
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

/// Itab addresses found only by scanning the type descriptors (the path Go 1.27 binaries take),
/// ignoring `go:itab.*` symbols; in the order response, HTTP/2 writer, `*tls.Conn`, `*net.TCPConn`.
///
/// A diagnostic: tests compare it with the symbol addresses of Go releases that have both.
#[doc(hidden)]
pub fn itab_addresses_by_scan(path: &Path, data: &[u8]) -> Result<[Option<u64>; 4], InspectError> {
    let elf = parse_elf(path, data)?;
    let found = symbols::find_symbols(&elf);
    let runtime_type_names: Vec<&'static str> = itabs::runtime_type_names().collect();
    let types = dwarf::collect_types(&elf, &[], &runtime_type_names).map_err(|e| {
        InspectError::Stripped {
            path: path.to_path_buf(),
            missing: match e {
                dwarf::DwarfError::Missing(section) => section,
                dwarf::DwarfError::Parse(_) => "readable DWARF",
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
