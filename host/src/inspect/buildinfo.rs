//! The Go version of a binary: recorded by the linker in the `.go.buildinfo` section, or, in a
//! build that dropped that section, read from the runtime's own `runtime.buildVersion` (what
//! `runtime.Version()` returns), which every Go program keeps.
//!
//! `.go.buildinfo` layout (Go 1.18 and later, `runtime/debug` and `cmd/go/internal/version`): a 32-byte header
//! `"\xff Go buildinf:"`, pointer size (1 byte), flags (1 byte; bit 1 = strings stored inline),
//! padding; then the version string and the module info, each as a uvarint length followed by the
//! bytes. Before Go 1.18 the header held pointers to string headers instead.

use std::collections::HashMap;

use object::read::elf::{Rela, SectionHeader};
use object::{Object, ObjectSection};

use super::{Elf, GoVersion};

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_INLINE_STRINGS: u8 = 0x2;
/// Longer than any real version string ("go1.24.11 X:nocoverageredesign" etc.); bounds the read.
const MAX_VERSION_LEN: u64 = 1024;

/// Text returned for the pre-1.18 layout, which this module does not decode: such binaries are
/// out of the supported range anyway, and this text makes the error message say why.
pub const PRE_GO118: &str = "a Go release older than go1.18";

/// The raw version string (e.g. `go1.24.11`) from the contents of `.go.buildinfo`.
pub fn version_string(section: &[u8]) -> Result<String, String> {
    // The header is 16-byte aligned; Go's own reader scans for it the same way.
    let start = (0..section.len())
        .step_by(16)
        .find(|&i| section[i..].starts_with(MAGIC))
        .ok_or_else(|| "no build info header".to_string())?;
    let header = section
        .get(start..start + HEADER_LEN)
        .ok_or_else(|| "build info header is truncated".to_string())?;
    if header[15] & FLAG_INLINE_STRINGS == 0 {
        return Ok(PRE_GO118.to_string());
    }
    let rest = &section[start + HEADER_LEN..];
    let (len, used) = read_uvarint(rest).ok_or_else(|| "bad version length".to_string())?;
    if len == 0 || len > MAX_VERSION_LEN {
        return Err(format!("implausible version length {len}"));
    }
    let bytes = rest
        .get(used..used + len as usize)
        .ok_or_else(|| "version string is truncated".to_string())?;
    String::from_utf8(bytes.to_vec()).map_err(|_| "version string is not UTF-8".to_string())
}

/// The version in `runtime.buildVersion`, found without symbols: the one string header in the
/// writable data whose text is a Go version and nothing else (`go1.26.5`, or with the
/// experiments it was built with, `go1.26.5 X:nodwarf5`). `None` if there is none, or two
/// different ones.
pub fn runtime_version(elf: &Elf<'_>) -> Option<String> {
    let relocated = relative_relocations(elf);
    let mut found: Option<&str> = None;
    for section in elf.sections() {
        if !matches!(section.name(), Ok(".data" | ".noptrdata")) {
            continue;
        }
        let Ok(data) = section.data() else { continue };
        let base = section.address();
        // A pointer word as the loader leaves it: PIE and dynamically linked builds may store the
        // address as a relocation's addend rather than in the word.
        let word = |at: usize| -> Option<u64> {
            relocated
                .get(&(base + at as u64))
                .copied()
                .or_else(|| Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?)))
        };
        for at in (0..data.len().saturating_sub(15)).step_by(8) {
            let Some(len) = word(at + 8).filter(|len| (6..=64).contains(len)) else {
                continue;
            };
            let Some(text) = word(at).and_then(|ptr| bytes_at(elf, ptr, len)) else {
                continue;
            };
            let Some(text) = std::str::from_utf8(text)
                .ok()
                .filter(|t| is_version_text(t))
            else {
                continue;
            };
            match found {
                Some(earlier) if earlier != text => return None,
                _ => found = Some(text),
            }
        }
    }
    found.map(str::to_owned)
}

/// `go1.N`, `go1.N.P`, optionally followed by ` X:experiments`.
fn is_version_text(text: &str) -> bool {
    let (version, rest) = match text.split_once(' ') {
        Some((version, rest)) => (version, Some(rest)),
        None => (text, None),
    };
    let Some(numbers) = version.strip_prefix("go1.") else {
        return false;
    };
    let mut parts = numbers.split('.');
    let numeric =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    numeric(parts.next())
        && parts.next().is_none_or(|p| numeric(Some(p)))
        && parts.next().is_none()
        && rest.is_none_or(|r| r.starts_with("X:"))
}

/// `len` bytes at virtual address `address`, from the section holding them.
fn bytes_at<'data>(elf: &Elf<'data>, address: u64, len: u64) -> Option<&'data [u8]> {
    let section = super::symbols::section_containing(elf, address)?;
    let data = section.data().ok()?;
    let start = usize::try_from(address - section.address()).ok()?;
    data.get(start..start.checked_add(usize::try_from(len).ok()?)?)
}

/// Address -> addend of every `R_X86_64_RELATIVE` relocation (empty for a fixed-address build).
fn relative_relocations(elf: &Elf<'_>) -> HashMap<u64, u64> {
    let endian = elf.endian();
    let data = elf.data();
    let mut out = HashMap::new();
    for header in elf.elf_section_table().iter() {
        let Ok(Some((relocations, _))) = header.rela(endian, data) else {
            continue;
        };
        for rela in relocations {
            if rela.r_type(endian, false) == object::elf::R_X86_64_RELATIVE {
                out.insert(rela.r_offset(endian), rela.r_addend(endian) as u64);
            }
        }
    }
    out
}

/// Parses `go1.24.11`, `go1.22rc1`, `go1.21.13 X:boringcrypto` or `devel go1.23-abc123 ...`.
/// Pre-releases count as patch 0. `None` for anything else.
pub fn parse_go_version(text: &str) -> Option<GoVersion> {
    let text = text.trim();
    let text = text.strip_prefix("devel ").unwrap_or(text);
    let token = text.split_whitespace().next()?.strip_prefix("go")?;
    let mut numbers = token.split('.');
    let major = leading_number(numbers.next()?)?;
    let minor = leading_number(numbers.next()?)?;
    let patch = match numbers.next() {
        Some(p) => leading_number(p)?,
        None => 0,
    };
    Some(GoVersion::new(major, minor, patch))
}

/// The decimal number at the start of `s` ("22rc1" -> 22); `None` when `s` starts otherwise.
fn leading_number(s: &str) -> Option<u32> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

fn read_uvarint(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section_with(version: &[u8], flags: u8) -> Vec<u8> {
        let mut s = vec![0u8; 16]; // the header need not be at offset 0
        s.extend_from_slice(MAGIC);
        s.push(8);
        s.push(flags);
        s.resize(16 + HEADER_LEN, 0);
        s.push(version.len() as u8);
        s.extend_from_slice(version);
        s.extend_from_slice(b"\x05mod..");
        s
    }

    #[test]
    fn reads_inline_version() {
        let s = section_with(b"go1.24.11", FLAG_INLINE_STRINGS);
        assert_eq!(version_string(&s).unwrap(), "go1.24.11");
    }

    #[test]
    fn pointer_format_is_reported_as_old() {
        let s = section_with(b"go1.16", 0);
        assert_eq!(version_string(&s).unwrap(), PRE_GO118);
        assert_eq!(parse_go_version(PRE_GO118), None);
    }

    #[test]
    fn malformed_sections_are_errors() {
        assert!(version_string(b"").is_err());
        assert!(version_string(&[0u8; 64]).is_err());
        let full = section_with(b"go1.24.11", FLAG_INLINE_STRINGS);
        // Cut inside the header, then inside the version string.
        assert!(version_string(&full[..16 + 20]).is_err());
        assert!(version_string(&full[..16 + HEADER_LEN + 4]).is_err());
        // Length with the continuation bit set on every byte.
        let mut bad = full[..16 + HEADER_LEN].to_vec();
        bad.extend_from_slice(&[0xff; 12]);
        assert!(version_string(&bad).is_err());
        // Zero length.
        let mut empty = full[..16 + HEADER_LEN].to_vec();
        empty.push(0);
        assert!(version_string(&empty).is_err());
    }

    #[test]
    fn version_texts_are_exactly_a_version() {
        for good in ["go1.26.5", "go1.21", "go1.24.11 X:nocoverageredesign"] {
            assert!(is_version_text(good), "{good}");
        }
        for bad in [
            "go1.26.5x",
            "go1.",
            "go1.2.3.4",
            "requires go1.21 or later",
            "go1.22rc1",
            "go1.26.5 and more",
            "go2.0",
        ] {
            assert!(!is_version_text(bad), "{bad}");
        }
    }

    #[test]
    fn parses_version_forms() {
        let v = |s| parse_go_version(s);
        assert_eq!(v("go1.24.11"), Some(GoVersion::new(1, 24, 11)));
        assert_eq!(
            v("go1.21.13 X:boringcrypto"),
            Some(GoVersion::new(1, 21, 13))
        );
        assert_eq!(v("go1.22rc1"), Some(GoVersion::new(1, 22, 0)));
        assert_eq!(v("go1.21"), Some(GoVersion::new(1, 21, 0)));
        assert_eq!(
            v("devel go1.23-abc123 Tue Jan 1 00:00:00 2024 +0000"),
            Some(GoVersion::new(1, 23, 0))
        );
        assert_eq!(v("1.24.11"), None);
        assert_eq!(v("gox.y"), None);
        assert_eq!(v(""), None);
        assert_eq!(GoVersion::new(1, 24, 11).to_string(), "go1.24.11");
    }
}
