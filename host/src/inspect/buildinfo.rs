//! The Go version recorded by the linker in the `.go.buildinfo` section.
//!
//! Layout (Go 1.18 and later, `runtime/debug` and `cmd/go/internal/version`): a 32-byte header
//! `"\xff Go buildinf:"`, pointer size (1 byte), flags (1 byte; bit 1 = strings stored inline),
//! padding; then the version string and the module info, each as a uvarint length followed by the
//! bytes. Before Go 1.18 the header held pointers to string headers instead.

use super::GoVersion;

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
