//! The few functions and itabs the probes need, found by name in one pass over the names a binary
//! keeps, without building a name map (Go binaries have tens of thousands): the ELF symbol table
//! when there is one, else Go's own function table (`pclntab`), which no build can drop.

use object::{Object, ObjectSection, ObjectSymbol, SectionKind};

use super::itabs::{ItabAddresses, ITABS};
use super::request_end::{
    CONN_SERVE_SYMBOL, FINISH_REQUEST_SYMBOL, H2_HANDLER_DONE_SYMBOLS, H2_RUN_HANDLER_PREFIXES,
    HIJACK_SYMBOL, X_NET_H2_RUN_HANDLER_PREFIX,
};
use super::{
    Elf, BUFIO_FLUSH_SYMBOL, GOPANIC_SYMBOL, H2_WRITE_HEADERS_SYMBOLS, REQUEST_WRITE_SYMBOL,
    ROUND_TRIP_SYMBOL, SERVE_HTTP_SYMBOL, WRITE_SUBSET_SYMBOL, X_NET_H2_WRITE_HEADERS_SYMBOL,
    X_NET_ROUND_TRIP_SYMBOL,
};

/// Where a function symbol says a function is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionSymbol {
    pub address: u64,
    pub size: u64,
}

#[derive(Debug, Default)]
pub struct FoundSymbols {
    pub serve_http: Option<FunctionSymbol>,
    pub gopanic: Option<FunctionSymbol>,
    /// The functions `request_end` looks at (see there).
    pub finish_request: Option<FunctionSymbol>,
    pub conn_serve: Option<FunctionSymbol>,
    /// With the name it was found under (it depends on the Go release).
    pub h2_handler_done: Option<(&'static str, FunctionSymbol)>,
    /// `runHandler` and its closures.
    pub h2_run_handler: Vec<FunctionSymbol>,
    pub hijack: Option<FunctionSymbol>,
    /// `(*Transport).roundTrip`: where client calls start and return.
    pub round_trip: Option<FunctionSymbol>,
    /// golang.org/x/net/http2's `(*Transport).RoundTrip`: the same, for x/net's client.
    pub x_net_round_trip: Option<FunctionSymbol>,
    /// `(*Request).write` and the `Header.writeSubset` it calls: where `traceparent` is added.
    pub request_write: Option<FunctionSymbol>,
    pub write_subset: Option<FunctionSymbol>,
    /// `(*ClientConn).writeHeaders` (with the name it was found under) and `(*bufio.Writer).Flush`:
    /// where `traceparent` is added to HTTP/2 requests.
    pub h2_write_headers: Option<(&'static str, FunctionSymbol)>,
    /// golang.org/x/net/http2's `(*ClientConn).writeHeaders`.
    pub x_net_h2_write_headers: Option<FunctionSymbol>,
    pub bufio_flush: Option<FunctionSymbol>,
    /// golang.org/x/net/http2's server is linked in (see `request_end`).
    pub x_net_h2_server: bool,
    /// `runtime.types`: start of the type descriptors, the base of DWARF's
    /// `DW_AT_go_runtime_type` offsets.
    pub runtime_types: Option<u64>,
    /// Itabs that have a `go:itab.*` symbol (Go <= 1.24 has them; Go 1.27 does not).
    pub itabs: ItabAddresses,
}

const RUNTIME_TYPES_SYMBOL: &str = "runtime.types";

/// Finds the wanted names in the ELF symbol table.
pub fn find_symbols(elf: &Elf<'_>) -> FoundSymbols {
    let mut found = FoundSymbols::default();
    for symbol in elf.symbols() {
        let Ok(name) = symbol.name() else { continue };
        found.offer(name, symbol.address(), symbol.size());
    }
    found
}

impl FoundSymbols {
    /// The functions found, as (name, address, size), in a fixed order.
    pub fn functions(&self) -> Vec<(String, u64, u64)> {
        let named = |name: &str, f: &FunctionSymbol| (name.to_string(), f.address, f.size);
        let mut out: Vec<_> = [
            (SERVE_HTTP_SYMBOL, self.serve_http),
            (GOPANIC_SYMBOL, self.gopanic),
            (FINISH_REQUEST_SYMBOL, self.finish_request),
            (CONN_SERVE_SYMBOL, self.conn_serve),
            (HIJACK_SYMBOL, self.hijack),
            (ROUND_TRIP_SYMBOL, self.round_trip),
            (X_NET_ROUND_TRIP_SYMBOL, self.x_net_round_trip),
            (REQUEST_WRITE_SYMBOL, self.request_write),
            (X_NET_H2_WRITE_HEADERS_SYMBOL, self.x_net_h2_write_headers),
        ]
        .iter()
        .filter_map(|(name, f)| f.as_ref().map(|f| named(name, f)))
        .collect();
        out.extend(self.h2_handler_done.map(|(name, f)| named(name, &f)));
        out.extend(self.h2_write_headers.map(|(name, f)| named(name, &f)));
        let mut run_handler: Vec<_> = (self.h2_run_handler.iter())
            .map(|f| named("runHandler", f))
            .collect();
        run_handler.sort_by_key(|(_, address, _)| *address);
        out.extend(run_handler);
        out
    }

    /// Takes the symbol `name` at `address` (`size` bytes long) if it is one the probes need.
    pub fn offer(&mut self, name: &str, address: u64, size: u64) {
        let found = self;
        let function = || FunctionSymbol { address, size };
        if let Some(itab) = name.strip_prefix("go:itab.") {
            for (slot, spec) in ITABS.iter().enumerate() {
                if spec.symbol_matches(itab) {
                    found.itabs.0[slot] = Some(address);
                }
            }
        } else if name == SERVE_HTTP_SYMBOL {
            found.serve_http = Some(function());
        } else if name == GOPANIC_SYMBOL {
            found.gopanic = Some(function());
        } else if name == FINISH_REQUEST_SYMBOL {
            found.finish_request = Some(function());
        } else if name == CONN_SERVE_SYMBOL {
            found.conn_serve = Some(function());
        } else if let Some(known) = H2_HANDLER_DONE_SYMBOLS.iter().find(|s| **s == name) {
            found.h2_handler_done = Some((known, function()));
        } else if H2_RUN_HANDLER_PREFIXES.iter().any(|p| name.starts_with(p)) {
            found.h2_run_handler.push(function());
        } else if name == HIJACK_SYMBOL {
            found.hijack = Some(function());
        } else if name == ROUND_TRIP_SYMBOL {
            found.round_trip = Some(function());
        } else if name == X_NET_ROUND_TRIP_SYMBOL {
            found.x_net_round_trip = Some(function());
        } else if name == REQUEST_WRITE_SYMBOL {
            found.request_write = Some(function());
        } else if name == WRITE_SUBSET_SYMBOL {
            found.write_subset = Some(function());
        } else if let Some(known) = H2_WRITE_HEADERS_SYMBOLS.iter().find(|s| **s == name) {
            found.h2_write_headers = Some((known, function()));
        } else if name == X_NET_H2_WRITE_HEADERS_SYMBOL {
            found.x_net_h2_write_headers = Some(function());
        } else if name == BUFIO_FLUSH_SYMBOL {
            found.bufio_flush = Some(function());
        } else if name.starts_with(X_NET_H2_RUN_HANDLER_PREFIX) {
            found.x_net_h2_server = true;
        } else if name == RUNTIME_TYPES_SYMBOL {
            found.runtime_types = Some(address);
        }
    }
}

/// The loaded section holding `address` (with its bytes in the file).
pub fn section_containing<'data, 'file>(
    elf: &'file Elf<'data>,
    address: u64,
) -> Option<object::read::elf::ElfSection64<'data, 'file, object::Endianness, &'data [u8]>> {
    elf.sections().find(|s| {
        s.kind() != SectionKind::UninitializedData
            && s.kind() != SectionKind::UninitializedTls
            && s.address() <= address
            && address - s.address() < s.size()
    })
}

/// File offset of the byte at virtual `address`: what a uprobe attaches to.
pub fn file_offset(elf: &Elf<'_>, address: u64) -> Result<u64, String> {
    let section = section_containing(elf, address)
        .ok_or_else(|| format!("no section holds address {address:#x}"))?;
    let (offset, _) = section
        .file_range()
        .ok_or_else(|| format!("section {} has no file data", section.name().unwrap_or("?")))?;
    Ok(offset + (address - section.address()))
}

/// The machine code of a function, from the section that holds it.
pub fn function_bytes<'data>(
    elf: &Elf<'data>,
    function: &FunctionSymbol,
) -> Result<&'data [u8], String> {
    let section = section_containing(elf, function.address)
        .ok_or_else(|| format!("no section holds the function at {:#x}", function.address))?;
    let data = section.data().map_err(|e| {
        format!(
            "cannot read the section holding {:#x}: {e}",
            function.address
        )
    })?;
    let start = (function.address - section.address()) as usize;
    data.get(start..start.saturating_add(function.size as usize))
        .ok_or_else(|| {
            format!(
                "the function at {:#x} ({} bytes) extends past the end of its section",
                function.address, function.size
            )
        })
}
