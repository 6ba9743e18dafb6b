//! What every Go binary keeps however it was built: the function table (`.gopclntab`, which the
//! runtime needs for stack traces and garbage collection), the module data, and the type and
//! interface tables the runtime uses for conversions. A release build made with
//! `-ldflags='-s -w'` has no ELF symbols and no DWARF, but all of these. Read with the `gobin`
//! crate.

use super::itabs::{ItabAddresses, ITABS};
use super::symbols::FoundSymbols;

/// A Go binary's runtime data, parsed.
pub struct RuntimeData<'a> {
    go: gobin::GoBinary<'a>,
}

impl<'a> RuntimeData<'a> {
    /// `None` when `data` has no Go function table: not a Go program.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let go = gobin::GoBinary::parse(data)?;
        go.pclntab()?;
        Some(RuntimeData { go })
    }

    /// Offers every function of the function table to `found` (see [`FoundSymbols::offer`]);
    /// returns how many there were. A function's size is the distance to the next one's entry:
    /// the table is sorted by address and covers the code without gaps.
    pub fn offer_functions(&self, found: &mut FoundSymbols) -> usize {
        let (Some(table), Some(text)) = (self.go.pclntab(), self.go.text_va()) else {
            return 0;
        };
        let end_of_text = self.go.etext_va();
        let mut entries = table.func_entries().peekable();
        let mut count = 0;
        while let Some((entry, func)) = entries.next() {
            // A damaged table may hold any numbers.
            let next_entry = entries
                .peek()
                .and_then(|&(next, _)| text.checked_add(u64::from(next)));
            let Some(address) = text.checked_add(u64::from(entry)) else {
                continue;
            };
            let Some(end) = next_entry.or(end_of_text).filter(|&end| end > address) else {
                continue;
            };
            let Some(name) = table
                .parse_func(func)
                .and_then(|f| table.func_name(f.name_off as u32))
            else {
                continue;
            };
            found.offer(name, address, end - address);
            count += 1;
        }
        count
    }

    /// Fills the itabs not found yet from the binary's interface table, matching each entry's
    /// interface and concrete type by name.
    pub fn fill_itabs(&self, itabs: &mut ItabAddresses) {
        if itabs.0.iter().all(Option::is_some) {
            return;
        }
        for pair in self.go.itab_pairs() {
            let missing = || itabs.0.iter().any(Option::is_none);
            if !missing() {
                return;
            }
            let (Some(interface), Some(concrete)) = (
                self.go
                    .type_at(pair.iface_type_va)
                    .map(|t| runtime_name(&t)),
                self.go
                    .type_at(pair.concrete_type_va)
                    .map(|t| runtime_name(&t)),
            ) else {
                continue;
            };
            for (slot, spec) in ITABS.iter().enumerate() {
                if itabs.0[slot].is_none()
                    && spec
                        .candidates
                        .iter()
                        .any(|(c, i)| same_type_name(concrete, c) && same_type_name(interface, i))
                {
                    itabs.0[slot] = Some(pair.itab_va);
                }
            }
        }
    }
}

impl RuntimeData<'_> {
    /// The concrete type's name (as Go's `%T` prints it: `*net.OpError`) of every itab of the
    /// interface `error`, by itab address.
    pub fn error_types(&self) -> std::collections::HashMap<u64, String> {
        let mut out = std::collections::HashMap::new();
        for pair in self.go.itab_pairs() {
            let is_error =
                (self.go.type_at(pair.iface_type_va)).is_some_and(|t| runtime_name(&t) == "error");
            if !is_error {
                continue;
            }
            if let Some(concrete) = self.go.type_at(pair.concrete_type_va) {
                out.insert(pair.itab_va, runtime_name(&concrete).to_string());
            }
        }
        out
    }
}

/// `abi.TFlagExtraStar`: the stored name of a named type is `*T`, so that `*T`'s can share it.
const TFLAG_EXTRA_STAR: u8 = 1 << 1;

/// A type's name as Go spells it.
fn runtime_name<'a>(t: &gobin::structures::types::GoType<'a>) -> &'a str {
    match t.name.strip_prefix('*') {
        Some(name) if t.tflag & TFLAG_EXTRA_STAR != 0 => name,
        _ => t.name,
    }
}

/// Whether a type name as the runtime stores it matches `wanted` (`*net/http.response`). The
/// runtime names a type by its package's name, not its path (`*http.response`), and some readers
/// give the path; both are accepted. A path's last element is the package name for every type
/// the probes look for.
fn same_type_name(stored: &str, wanted: &str) -> bool {
    if stored == wanted {
        return true;
    }
    let (stars, path_and_name) =
        wanted.split_at(wanted.len() - wanted.trim_start_matches('*').len());
    let short = match path_and_name.rsplit_once('/') {
        Some((_, last)) => last,
        None => path_and_name,
    };
    stored.strip_prefix(stars) == Some(short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_type_names_match_by_package_name_or_path() {
        assert!(same_type_name("*http.response", "*net/http.response"));
        assert!(same_type_name("*net/http.response", "*net/http.response"));
        assert!(same_type_name(
            "http.ResponseWriter",
            "net/http.ResponseWriter"
        ));
        assert!(same_type_name("*tls.Conn", "*crypto/tls.Conn"));
        assert!(same_type_name("*net.TCPConn", "*net.TCPConn"));
        assert!(!same_type_name("http.response", "*net/http.response"));
        assert!(!same_type_name(
            "*http.responseWriter",
            "*net/http.response"
        ));
        assert!(!same_type_name("**http.response", "*net/http.response"));
    }
}
