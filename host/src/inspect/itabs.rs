//! Addresses of the itabs (interface method tables) the probes compare the ResponseWriter and
//! net.Conn interface values against, to tell which concrete type sits behind an interface.
//!
//! Two sources, tried in this order:
//! - `go:itab.<concrete>,<interface>` symbols in `.symtab`: present in Go 1.21 through 1.24
//!   (verified on the fixtures).
//! - Go 1.27 (verified; 1.25/1.26 unverified) emits no itab symbols: its linker puts the itabs
//!   right after the type descriptors (`moduledata.itaboffset`) without names. There an itab is
//!   found by its contents: `{inter *InterfaceType, _type *Type, hash uint32, ...}` with the two
//!   descriptor addresses taken from DWARF (`DW_AT_go_runtime_type`, an offset from
//!   `runtime.types`) and the hash checked against the type descriptor's own hash. The linker
//!   writes link-time addresses into the file even for PIE (plus R_X86_64_RELATIVE relocations),
//!   so the same scan works for PIE.

use object::ObjectSection;

use super::symbols::section_containing;
use super::Elf;

/// One itab the probes need, with the (concrete type, interface) pairs it can be, newest last.
pub struct ItabSpec {
    pub candidates: &'static [(&'static str, &'static str)],
}

impl ItabSpec {
    /// `name` is a symbol name without its `go:itab.` prefix.
    pub fn symbol_matches(&self, name: &str) -> bool {
        self.candidates.iter().any(|(concrete, interface)| {
            name.strip_prefix(concrete)
                .and_then(|rest| rest.strip_prefix(','))
                == Some(interface)
        })
    }
}

pub const RESPONSE: usize = 0;
pub const H2_WRITER: usize = 1;
pub const TLS_CONN: usize = 2;
pub const TCP_CONN: usize = 3;
/// The `context.Context` types a client call's context is followed through, in the order of
/// `GoOffsets::context_itabs`: `ITABS[CONTEXTS + i]`.
pub const CONTEXTS: usize = 4;
pub const BUFIO_WRITER: usize = CONTEXTS + http_autoinstrument_common::CONTEXT_TYPES;
pub const ITAB_COUNT: usize = BUFIO_WRITER + 1;

pub const ITABS: [ItabSpec; ITAB_COUNT] = [
    // RESPONSE: the HTTP/1.x ResponseWriter, in every supported version.
    ItabSpec {
        candidates: &[("*net/http.response", "net/http.ResponseWriter")],
    },
    // H2_WRITER: the HTTP/2 ResponseWriter. Go 1.21-1.24 (bundled x/net/http2 inside net/http):
    // `*net/http.http2responseWriter`. Go 1.27 (http2 moved to net/http/internal/http2): the
    // value type `net/http.http2ResponseWriter{*http2.responseWriter}`; being one pointer, it is
    // stored directly in the interface's data word, which therefore points at an
    // `internal/http2.responseWriter` just as it pointed at an `http2responseWriter` before.
    ItabSpec {
        candidates: &[
            ("*net/http.http2responseWriter", "net/http.ResponseWriter"),
            ("net/http.http2ResponseWriter", "net/http.ResponseWriter"),
        ],
    },
    ItabSpec {
        candidates: &[("*crypto/tls.Conn", "net.Conn")],
    },
    ItabSpec {
        candidates: &[("*net.TCPConn", "net.Conn")],
    },
    // CONTEXTS: the contexts the standard library derives (WithCancel, WithValue, WithTimeout,
    // WithoutCancel, AfterFunc's stop context, AfterFunc). The two value types are stored in an
    // interface through a pointer, as every type larger than a pointer is.
    ItabSpec {
        candidates: &[("*context.cancelCtx", "context.Context")],
    },
    ItabSpec {
        candidates: &[("*context.valueCtx", "context.Context")],
    },
    ItabSpec {
        candidates: &[("*context.timerCtx", "context.Context")],
    },
    ItabSpec {
        candidates: &[("context.withoutCancelCtx", "context.Context")],
    },
    ItabSpec {
        candidates: &[("context.stopCtx", "context.Context")],
    },
    ItabSpec {
        candidates: &[("*context.afterFuncCtx", "context.Context")],
    },
    // BUFIO_WRITER: the writer net/http's client writes a request's headers to.
    ItabSpec {
        candidates: &[("*bufio.Writer", "io.Writer")],
    },
];

/// Every type name whose runtime type descriptor the scan may need.
pub fn runtime_type_names() -> impl Iterator<Item = &'static str> {
    ITABS
        .iter()
        .flat_map(|spec| spec.candidates.iter())
        .flat_map(|(concrete, interface)| [*concrete, *interface])
}

/// Link-time itab addresses, indexed as [`ITABS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItabAddresses(pub [Option<u64>; ITAB_COUNT]);

/// Fills the itabs that had no symbol by scanning for their contents.
/// `runtime_type` maps a type name to its `DW_AT_go_runtime_type` offset.
pub fn fill_by_scan(
    elf: &Elf<'_>,
    runtime_types: u64,
    runtime_type: impl Fn(&str) -> Option<u64>,
    itabs: &mut ItabAddresses,
) {
    for (slot, spec) in ITABS.iter().enumerate() {
        if itabs.0[slot].is_some() {
            continue;
        }
        itabs.0[slot] = spec.candidates.iter().find_map(|(concrete, interface)| {
            let concrete = runtime_types.checked_add(runtime_type(concrete)?)?;
            let interface = runtime_types.checked_add(runtime_type(interface)?)?;
            scan_for_itab(elf, interface, concrete)
        });
    }
}

/// Address of the itab `{inter: interface, _type: concrete, hash: concrete's hash}`, searched in
/// the section that holds the concrete type's descriptor (itabs follow the descriptors there).
pub fn scan_for_itab(elf: &Elf<'_>, interface: u64, concrete: u64) -> Option<u64> {
    // abi.Type starts {Size_ uintptr, PtrBytes uintptr, Hash uint32}; abi.ITab {Inter, Type, Hash}.
    const TYPE_HASH_OFFSET: usize = 16;
    const ITAB_HASH_OFFSET: usize = 16;
    let section = section_containing(elf, concrete)?;
    let data = section.data().ok()?;
    let base = section.address();
    let word = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
    };
    let half = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
    };
    let type_hash = half(usize::try_from(concrete - base).ok()? + TYPE_HASH_OFFSET)?;
    // Itabs are pointer-aligned; step through the section's 8-byte words.
    let first = ((8 - base % 8) % 8) as usize;
    (first..data.len().saturating_sub(ITAB_HASH_OFFSET + 4))
        .step_by(8)
        .find(|&at| {
            word(at) == Some(interface)
                && word(at + 8) == Some(concrete)
                && half(at + ITAB_HASH_OFFSET) == Some(type_hash)
        })
        .map(|at| base + at as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_names_match_exactly() {
        let response = &ITABS[RESPONSE];
        assert!(response.symbol_matches("*net/http.response,net/http.ResponseWriter"));
        assert!(!response.symbol_matches("*net/http.response,net/http.Flusher"));
        assert!(!response.symbol_matches("*net/http.responseX,net/http.ResponseWriter"));
        let h2 = &ITABS[H2_WRITER];
        assert!(h2.symbol_matches("*net/http.http2responseWriter,net/http.ResponseWriter"));
        assert!(h2.symbol_matches("net/http.http2ResponseWriter,net/http.ResponseWriter"));
        assert!(!ITABS[TCP_CONN].symbol_matches("*net.UDPConn,net.Conn"));
    }
}
