//! W3C trace context as the probes handle it: the context of a span, the `traceparent` header's
//! parser, and the sampler. The probes decide a trace's ids and whether it is sampled where it
//! starts, so that every span of it, in this process and (written into outgoing requests) in the
//! next, agrees; the agent tests the same code on the host.

/// The trace context of a span.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The parent's span id; zeros for a root.
    pub parent_span_id: [u8; 8],
    /// W3C trace flags as decided for the trace (`FLAG_SAMPLED`).
    pub flags: u8,
    /// One of `parent::*`.
    pub parent: u8,
    pub _pad: [u8; 6],
}

/// `TraceContext::flags`: the trace is recorded and exported.
pub const FLAG_SAMPLED: u8 = 1;

/// What a span's parent is.
pub mod parent {
    /// None: the span starts a trace.
    pub const NONE: u8 = 0;
    /// A span of this process (a client call's server request).
    pub const LOCAL: u8 = 1;
    /// The caller's span, named by the request's `traceparent`.
    pub const REMOTE: u8 = 2;
}

impl TraceContext {
    pub const fn empty() -> Self {
        TraceContext {
            trace_id: [0; 16],
            span_id: [0; 8],
            parent_span_id: [0; 8],
            flags: 0,
            parent: parent::NONE,
            _pad: [0; 6],
        }
    }

    pub fn is_sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }
}

/// Bytes of a `traceparent` value the probes copy: version 00's 55 and one more, which tells a
/// longer value (a later version may append fields after a `-`).
pub const TRACEPARENT_COPY: usize = 56;
/// Length of a version-00 `traceparent` value.
pub const TRACEPARENT_LEN: usize = 55;

/// A parsed `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traceparent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
}

/// Parses a `traceparent` value of `len` bytes whose first `min(len, 56)` bytes are in `text`,
/// as the W3C Trace Context recommendation says: `version-traceid-parentid-flags`, lowercase
/// hex, version `ff` invalid, version `00` exactly 55 bytes, a later version at least that with
/// a `-` after them; an all-zero trace id or parent id is invalid. `None`: ignore the header.
#[inline(always)]
pub fn parse_traceparent(text: &[u8; TRACEPARENT_COPY], len: u64) -> Option<Traceparent> {
    if len < TRACEPARENT_LEN as u64 {
        return None;
    }
    let version = hex_byte(text[0], text[1])?;
    if version == 0xff
        || (version == 0 && len != TRACEPARENT_LEN as u64)
        || (version != 0 && len > TRACEPARENT_LEN as u64 && text[TRACEPARENT_LEN] != b'-')
    {
        return None;
    }
    if text[2] != b'-' || text[35] != b'-' || text[52] != b'-' {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut any = 0u8;
    for (i, byte) in trace_id.iter_mut().enumerate() {
        *byte = hex_byte(text[3 + 2 * i], text[4 + 2 * i])?;
        any |= *byte;
    }
    if any == 0 {
        return None;
    }
    let mut parent_id = [0u8; 8];
    any = 0;
    for (i, byte) in parent_id.iter_mut().enumerate() {
        *byte = hex_byte(text[36 + 2 * i], text[37 + 2 * i])?;
        any |= *byte;
    }
    if any == 0 {
        return None;
    }
    let flags = hex_byte(text[53], text[54])?;
    Some(Traceparent {
        trace_id,
        parent_id,
        flags,
    })
}

/// Value of each byte as a lowercase hex digit; `INVALID` where it is not one. A table, not a
/// `match`: the verifier follows each arm of a match as its own path, and the digits of a
/// `traceparent` multiplied those paths past its limit.
static HEX_VALUE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut c = 0;
    while c < 10 {
        table[b'0' as usize + c] = c as u8;
        c += 1;
    }
    c = 0;
    while c < 6 {
        table[b'a' as usize + c] = 10 + c as u8;
        c += 1;
    }
    table
};
const INVALID: u8 = 0xff;

#[inline(always)]
fn hex_byte(high: u8, low: u8) -> Option<u8> {
    let (high, low) = (HEX_VALUE[high as usize], HEX_VALUE[low as usize]);
    if (high | low) > 0x0f {
        return None;
    }
    Some(high << 4 | low)
}

/// The header line the probes add to an HTTP/1.x request: `Traceparent: <value>\r\n`.
pub const TRACEPARENT_LINE_LEN: usize = TRACEPARENT_LINE_PREFIX.len() + TRACEPARENT_LEN + 2;
pub const TRACEPARENT_LINE_PREFIX: &[u8; 13] = b"Traceparent: ";

/// Writes the header line for `context` (see `TRACEPARENT_LINE_LEN`).
#[inline(always)]
pub fn format_traceparent_line(context: &TraceContext, out: &mut [u8; TRACEPARENT_LINE_LEN]) {
    let prefix = TRACEPARENT_LINE_PREFIX.len();
    out[..prefix].copy_from_slice(TRACEPARENT_LINE_PREFIX);
    write_value(context, &mut out[prefix..prefix + TRACEPARENT_LEN]);
    out[TRACEPARENT_LINE_LEN - 2] = b'\r';
    out[TRACEPARENT_LINE_LEN - 1] = b'\n';
}

/// The header field the probes add to an HTTP/2 request's header block: `traceparent` as an HPACK
/// literal without indexing, with a literal name (RFC 7541, section 6.2.2), which leaves the
/// connection's dynamic tables on both sides as they were. A zero byte, the name's length and
/// the name, the value's length and the value: both lengths fit the 7-bit prefix, and neither
/// string is Huffman-coded (their `H` bit is 0). HTTP/2 header names are lowercase.
pub const TRACEPARENT_HPACK_NAME: &[u8; 11] = b"traceparent";
pub const TRACEPARENT_HPACK_LEN: usize = 3 + TRACEPARENT_HPACK_NAME.len() + TRACEPARENT_LEN;

/// Writes the HPACK field for `context` (see `TRACEPARENT_HPACK_LEN`).
#[inline(always)]
pub fn format_traceparent_hpack(context: &TraceContext, out: &mut [u8; TRACEPARENT_HPACK_LEN]) {
    let name = TRACEPARENT_HPACK_NAME.len();
    out[0] = 0;
    out[1] = name as u8;
    out[2..2 + name].copy_from_slice(TRACEPARENT_HPACK_NAME);
    out[2 + name] = TRACEPARENT_LEN as u8;
    write_value(context, &mut out[3 + name..]);
}

/// Writes `traceparent`'s version-00 value for `context` (55 bytes).
pub fn format_traceparent(context: &TraceContext, out: &mut [u8; TRACEPARENT_LEN]) {
    write_value(context, out);
}

#[inline(always)]
fn write_value(context: &TraceContext, out: &mut [u8]) {
    out[..3].copy_from_slice(b"00-");
    write_hex(&context.trace_id, &mut out[3..35]);
    out[35] = b'-';
    write_hex(&context.span_id, &mut out[36..52]);
    out[52] = b'-';
    write_hex(&[context.flags & FLAG_SAMPLED], &mut out[53..55]);
}

/// Writes `bytes` as lowercase hex into `out` (twice as long).
#[inline(always)]
pub fn write_hex(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, &b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 15) as usize];
    }
}

/// How the probes decide whether a trace is sampled, as `OTEL_TRACES_SAMPLER` names it:
/// `SAMPLER_*` with `PARENT_BASED` for the `parentbased_*` samplers.
pub mod sampler {
    pub const ALWAYS_ON: u64 = 0;
    pub const ALWAYS_OFF: u64 = 1;
    pub const TRACE_ID_RATIO: u64 = 2;
    /// Follow the parent's decision when there is a parent.
    pub const PARENT_BASED: u64 = 1 << 8;
}

/// The bound of `TRACE_ID_RATIO` for a ratio in [0, 1]: a trace is sampled when its id's last 8
/// bytes, big-endian, shifted right by one, are below it (as the OpenTelemetry Go SDK decides).
pub fn ratio_bound(ratio: f64) -> u64 {
    if ratio >= 1.0 {
        1 << 63
    } else if ratio > 0.0 {
        (ratio * (1u64 << 63) as f64) as u64
    } else {
        0
    }
}

/// Whether a trace is sampled, from the sampler (`sampler::*`), its ratio bound, the trace id,
/// and the parent's decision when it has a parent.
#[inline(always)]
pub fn is_sampled(
    mode: u64,
    bound: u64,
    trace_id: &[u8; 16],
    parent_sampled: Option<bool>,
) -> bool {
    if mode & sampler::PARENT_BASED != 0 {
        if let Some(sampled) = parent_sampled {
            return sampled;
        }
    }
    match mode & !sampler::PARENT_BASED {
        sampler::ALWAYS_OFF => false,
        sampler::TRACE_ID_RATIO => {
            let mut low = 0u64;
            let mut i = 8;
            while i < 16 {
                low = low << 8 | trace_id[i] as u64;
                i += 1;
            }
            (low >> 1) < bound
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<Traceparent> {
        let mut buf = [0u8; TRACEPARENT_COPY];
        let n = text.len().min(TRACEPARENT_COPY);
        buf[..n].copy_from_slice(&text.as_bytes()[..n]);
        parse_traceparent(&buf, text.len() as u64)
    }

    const GOOD: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_valid_traceparent_is_read() {
        let tp = parse(GOOD).unwrap();
        assert_eq!(tp.trace_id[0], 0x0a);
        assert_eq!(tp.trace_id[15], 0x9c);
        assert_eq!(
            tp.parent_id,
            [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]
        );
        assert_eq!(tp.flags, 1);
        // A later version may append fields.
        let later = "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-whatever";
        assert_eq!(parse(later).unwrap().flags, 0);
        let later_exact = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        assert!(parse(later_exact).is_some());
    }

    #[test]
    fn the_http2_field_is_an_hpack_literal_of_the_traceparent() {
        let context = TraceContext {
            trace_id: [0xab; 16],
            span_id: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
            flags: FLAG_SAMPLED,
            ..TraceContext::empty()
        };
        let mut field = [0xffu8; TRACEPARENT_HPACK_LEN];
        format_traceparent_hpack(&context, &mut field);
        assert_eq!(TRACEPARENT_HPACK_LEN, 69);
        // Literal header field without indexing, new name (0000 0000), then H=0 and 7-bit lengths.
        assert_eq!(field[0], 0x00);
        assert_eq!(field[1], 11);
        assert_eq!(&field[2..13], b"traceparent");
        assert_eq!(field[13], 55);
        let mut value = [0u8; TRACEPARENT_LEN];
        format_traceparent(&context, &mut value);
        assert_eq!(&field[14..], &value[..]);
        assert_eq!(
            &field[14..],
            b"00-abababababababababababababababab-0123456789abcdef-01"
        );
    }

    #[test]
    fn malformed_values_are_ignored() {
        let cases = [
            ("too short", &GOOD[..54]),
            ("empty", ""),
            (
                "version ff",
                "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            (
                "version 00 too long",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
            ),
            (
                "later version, no dash after",
                "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
            ),
            (
                "uppercase hex",
                "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            ),
            (
                "non-hex trace id",
                "00-0af7651916cd43dd8448eb211c8031zz-b7ad6b7169203331-01",
            ),
            (
                "non-hex span id",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033g1-01",
            ),
            (
                "non-hex flags",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0x",
            ),
            (
                "zero trace id",
                "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            ),
            (
                "zero span id",
                "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            ),
            (
                "wrong separator",
                "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            (
                "missing separator",
                "00-0af7651916cd43dd8448eb211c80319cb-7ad6b7169203331-01",
            ),
        ];
        for (why, text) in cases {
            assert_eq!(parse(text), None, "{why}: {text:?}");
        }
    }

    #[test]
    fn a_context_is_written_as_it_is_read() {
        let tp = parse(GOOD).unwrap();
        let context = TraceContext {
            trace_id: tp.trace_id,
            span_id: tp.parent_id,
            flags: tp.flags,
            ..TraceContext::empty()
        };
        let mut out = [0u8; TRACEPARENT_LEN];
        format_traceparent(&context, &mut out);
        assert_eq!(&out[..], GOOD.as_bytes());
        let mut line = [0u8; TRACEPARENT_LINE_LEN];
        format_traceparent_line(&context, &mut line);
        assert_eq!(&line[..13], b"Traceparent: ");
        assert_eq!(&line[13..68], GOOD.as_bytes());
        assert_eq!(&line[68..], b"\r\n");
    }

    #[test]
    fn sampling_follows_the_sampler_the_parent_and_the_ratio() {
        use sampler::*;
        let id = |last: u8| {
            let mut id = [0u8; 16];
            id[8] = last;
            id
        };
        let half = ratio_bound(0.5);
        assert!(is_sampled(ALWAYS_ON, 0, &id(0), Some(false)));
        assert!(!is_sampled(ALWAYS_OFF, 0, &id(0), Some(true)));
        assert!(is_sampled(PARENT_BASED | ALWAYS_ON, 0, &id(0), None));
        assert!(!is_sampled(
            PARENT_BASED | ALWAYS_ON,
            0,
            &id(0),
            Some(false)
        ));
        assert!(is_sampled(PARENT_BASED | ALWAYS_OFF, 0, &id(0), Some(true)));
        assert!(is_sampled(TRACE_ID_RATIO, half, &id(0x7f), None));
        assert!(!is_sampled(TRACE_ID_RATIO, half, &id(0x80), None));
        assert!(!is_sampled(TRACE_ID_RATIO, half, &id(0x80), Some(true)));
        assert!(is_sampled(
            PARENT_BASED | TRACE_ID_RATIO,
            half,
            &id(0x80),
            Some(true)
        ));
        assert!(!is_sampled(TRACE_ID_RATIO, ratio_bound(0.0), &id(0), None));
        assert!(is_sampled(
            TRACE_ID_RATIO,
            ratio_bound(1.0),
            &[0xff; 16],
            None
        ));
    }
}
