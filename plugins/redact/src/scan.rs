//! The string scanners. Each returns the rewritten string only when something was redacted, so
//! clean values (almost all of them) cost one pass and no allocation.

pub struct Redactor {
    /// Sensitive query parameter names, compared case-insensitively.
    pub params: Vec<String>,
    pub bearer_tokens: bool,
    pub emails: bool,
    pub card_numbers: bool,
    pub replacement: String,
}

const EQ: u8 = 1;
const AT: u8 = 2;
const B: u8 = 4;

/// Which of the bytes that start a secret (`=`, `@`, `b`/`B`) each byte is.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'=' as usize] = EQ;
    t[b'@' as usize] = AT;
    t[b'b' as usize] = B;
    t[b'B' as usize] = B;
    t
};

impl Redactor {
    /// The redacted form of `s`, or `None` if it contains nothing to redact.
    ///
    /// Inlined up to the first pass, which clears nearly every string: a call returns its
    /// `Option<String>` through the Wasm stack in memory, which cost more than the pass over a
    /// short string; only strings that may hold a secret go on to the scans.
    #[inline(always)]
    pub fn redact(&self, s: &str) -> Option<String> {
        let Signals { seen, digits } = signals(s.as_bytes());
        let scans = Scans {
            query_params: seen & EQ != 0 && !self.params.is_empty(),
            bearer: seen & B != 0 && self.bearer_tokens,
            email: seen & AT != 0 && self.emails,
            cards: digits >= 13 && self.card_numbers,
        };
        if scans.query_params || scans.bearer || scans.email || scans.cards {
            self.scan(s, scans)
        } else {
            None
        }
    }

    #[inline(never)]
    fn scan(&self, s: &str, scans: Scans) -> Option<String> {
        let mut out: Option<String> = None;
        if scans.query_params {
            apply(&mut out, s, |t| self.query_params(t));
        }
        if scans.bearer {
            apply(&mut out, s, |t| self.bearer(t));
        }
        if scans.email {
            apply(&mut out, s, |t| self.email(t));
        }
        if scans.cards {
            apply(&mut out, s, |t| self.cards(t));
        }
        out
    }

    /// `name=value` where `name` starts the string or follows `?`, `&`, `;` or a space.
    fn query_params(&self, s: &str) -> Option<String> {
        let bytes = s.as_bytes();
        let mut out = String::new();
        let mut copied = 0;
        let mut i = 0;
        while let Some(rel) = s[i..].find('=') {
            let eq = i + rel;
            let mut start = eq;
            while start > 0 && is_param_char(bytes[start - 1]) {
                start -= 1;
            }
            let at_boundary = start == 0 || matches!(bytes[start - 1], b'?' | b'&' | b';' | b' ');
            let mut end = eq + 1;
            while end < bytes.len() && !matches!(bytes[end], b'&' | b'#' | b';' | b' ' | b'\t') {
                end += 1;
            }
            let name = &s[start..eq];
            let value = &s[eq + 1..end];
            if at_boundary
                && !value.is_empty()
                && value != self.replacement
                && self.params.iter().any(|p| p.eq_ignore_ascii_case(name))
            {
                out.push_str(&s[copied..eq + 1]);
                out.push_str(&self.replacement);
                copied = end;
            }
            i = end.max(eq + 1);
        }
        finish(out, s, copied)
    }

    /// `Bearer <token>`, case-insensitive.
    fn bearer(&self, s: &str) -> Option<String> {
        const PREFIX: &[u8] = b"bearer ";
        let bytes = s.as_bytes();
        let mut out = String::new();
        let mut copied = 0;
        let mut i = 0;
        while i + PREFIX.len() <= bytes.len() {
            if bytes[i..i + PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
                let start = i + PREFIX.len();
                let mut end = start;
                while end < bytes.len() && is_token_char(bytes[end]) {
                    end += 1;
                }
                if end > start && s[start..end] != self.replacement {
                    out.push_str(&s[copied..start]);
                    out.push_str(&self.replacement);
                    copied = end;
                }
                i = end.max(i + 1);
            } else {
                i += 1;
            }
        }
        finish(out, s, copied)
    }

    /// `local@domain.tld`.
    fn email(&self, s: &str) -> Option<String> {
        let bytes = s.as_bytes();
        let mut out = String::new();
        let mut copied = 0;
        let mut i = 0;
        while let Some(rel) = s[i..].find('@') {
            let at = i + rel;
            let mut start = at;
            while start > copied && is_local_char(bytes[start - 1]) {
                start -= 1;
            }
            let mut end = at + 1;
            while end < bytes.len()
                && (bytes[end].is_ascii_alphanumeric() || matches!(bytes[end], b'.' | b'-'))
            {
                end += 1;
            }
            while end > at + 1 && bytes[end - 1] == b'.' {
                end -= 1; // a sentence-ending dot is not part of the domain
            }
            let domain = &s[at + 1..end];
            let valid = start < at
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.starts_with('-');
            if valid {
                out.push_str(&s[copied..start]);
                out.push_str(&self.replacement);
                copied = end;
            }
            i = end.max(at + 1);
        }
        finish(out, s, copied)
    }

    /// 13 to 19 digits, optionally grouped by single spaces or dashes, passing the Luhn check.
    fn cards(&self, s: &str) -> Option<String> {
        let bytes = s.as_bytes();
        let mut out = String::new();
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            if !bytes[i].is_ascii_digit() || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
                i += 1;
                continue;
            }
            let start = i;
            let mut end = i;
            let mut digits = [0u8; 19];
            let mut count = 0;
            let mut j = i;
            while j < bytes.len() {
                if bytes[j].is_ascii_digit() {
                    if count == digits.len() {
                        count += 1; // too long to be a card number
                        break;
                    }
                    digits[count] = bytes[j] - b'0';
                    count += 1;
                    j += 1;
                    end = j;
                } else if matches!(bytes[j], b' ' | b'-')
                    && j + 1 < bytes.len()
                    && bytes[j + 1].is_ascii_digit()
                {
                    j += 1;
                } else {
                    break;
                }
            }
            let isolated = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
            if (13..=19).contains(&count) && isolated && luhn(&digits[..count]) {
                out.push_str(&s[copied..start]);
                out.push_str(&self.replacement);
                copied = end;
            }
            i = end.max(start + 1);
        }
        finish(out, s, copied)
    }
}

/// The scans a string needs: what its first pass found that the settings look for.
#[derive(Clone, Copy)]
struct Scans {
    query_params: bool,
    bearer: bool,
    email: bool,
    cards: bool,
}

/// What one pass over a string finds: which bytes that start a secret it has (`EQ`, `AT`, `B`
/// bits) and how many ASCII digits.
#[derive(Debug, PartialEq)]
struct Signals {
    seen: u8,
    digits: usize,
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Nonzero if any byte of `x` is zero (the high bit of a byte may also be set above a zero
/// byte, so only whether the result is zero means anything).
#[inline(always)]
fn has_zero_byte(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The pass `redact` starts with, over every string of every span: most of the plugin's time.
/// Eight bytes at a time as one u64 (Wasm has no cheaper way to look at bytes than its
/// registers): fewer instructions per byte than a table lookup per byte.
#[inline(always)]
fn signals(bytes: &[u8]) -> Signals {
    let (mut eq, mut at, mut b, mut digits) = (0u64, 0u64, 0u64, 0usize);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        eq |= has_zero_byte(x ^ (ONES * u64::from(b'=')));
        at |= has_zero_byte(x ^ (ONES * u64::from(b'@')));
        // `B` and `b` differ only in bit 5.
        b |= has_zero_byte((x | (ONES * 0x20)) ^ (ONES * u64::from(b'b')));
        // A byte is a digit when, as 7 bits, adding 0x50 sets its high bit (>= '0') and adding
        // 0x46 does not (< ':'), and its own high bit is clear. No sum carries into the next byte.
        let low7 = x & !HIGHS;
        let at_least_0 = low7 + ONES * 0x50;
        let at_least_colon = low7 + ONES * 0x46;
        digits += (at_least_0 & !at_least_colon & !x & HIGHS).count_ones() as usize;
    }
    let mut seen = (u8::from(eq != 0) * EQ) | (u8::from(at != 0) * AT) | (u8::from(b != 0) * B);
    for &byte in words.remainder() {
        seen |= CLASS[byte as usize];
        digits += usize::from(byte.is_ascii_digit());
    }
    Signals { seen, digits }
}

/// Runs `scan` on the latest version of the string.
fn apply(out: &mut Option<String>, original: &str, scan: impl Fn(&str) -> Option<String>) {
    let current = out.as_deref().unwrap_or(original);
    if let Some(next) = scan(current) {
        *out = Some(next);
    }
}

fn finish(mut out: String, s: &str, copied: usize) -> Option<String> {
    if copied == 0 {
        return None;
    }
    out.push_str(&s[copied..]);
    Some(out)
}

pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn is_param_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']')
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

fn is_local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor {
            params: crate::DEFAULT_PARAMS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            bearer_tokens: true,
            emails: true,
            card_numbers: true,
            replacement: "REDACTED".into(),
        }
    }

    /// `signals` one byte at a time, as it was written before it took eight.
    fn signals_bytewise(bytes: &[u8]) -> Signals {
        let (mut seen, mut digits) = (0u8, 0usize);
        for &b in bytes {
            seen |= CLASS[b as usize];
            digits += usize::from(b.is_ascii_digit());
        }
        Signals { seen, digits }
    }

    #[test]
    fn signals_see_every_byte_value_at_every_position_of_a_word_and_the_tail() {
        // Each byte value alone in a filler of 'a's, at each of 8 positions of a word and in the
        // tail after it; then beside its neighbours (a borrow out of a zero byte must not hide or
        // invent one in the next).
        for value in 0..=255u8 {
            for len in [8usize, 11, 16] {
                for pos in 0..len {
                    let mut s = vec![b'a'; len];
                    s[pos] = value;
                    assert_eq!(
                        signals(&s),
                        signals_bytewise(&s),
                        "{value:#x} at {pos} of {len}"
                    );
                }
            }
            for neighbour in [0u8, 1, b'0', b'9', b'=', b'@', b'B', 0x80, 0xff] {
                let s = [
                    neighbour, value, neighbour, value, value, neighbour, 0, value, value,
                ];
                assert_eq!(
                    signals(&s),
                    signals_bytewise(&s),
                    "{value:#x} by {neighbour:#x}"
                );
            }
        }
        let text = "GET /users/123?token=abc&mail=bob@example.com Bearer 4111 1111 1111 1111";
        assert_eq!(
            signals(text.as_bytes()),
            Signals {
                seen: EQ | AT | B,
                digits: 19
            }
        );
    }

    #[test]
    fn luhn_accepts_valid_and_rejects_invalid_numbers() {
        let d = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
        assert!(luhn(&d("4111111111111111")));
        assert!(luhn(&d("378282246310005")));
        assert!(!luhn(&d("4111111111111112")));
    }

    #[test]
    fn card_numbers_need_luhn_and_length() {
        let r = redactor();
        assert_eq!(r.redact("4111-1111-1111-1111").as_deref(), Some("REDACTED"));
        assert_eq!(r.redact("id 4111111111111112"), None, "Luhn fails");
        assert_eq!(r.redact("ts 1700000000000"), None, "13 digits failing Luhn");
        assert_eq!(r.redact("x41111111111111111"), None, "glued to a word");
    }

    #[test]
    fn params_only_at_parameter_boundaries() {
        let r = redactor();
        assert_eq!(r.redact("mytoken=1&a=2"), None);
        assert_eq!(
            r.redact("a=1;TOKEN=x#frag").as_deref(),
            Some("a=1;TOKEN=REDACTED#frag")
        );
        assert_eq!(r.redact("/p?token=&x=1"), None, "empty value stays empty");
        assert_eq!(r.redact("token=REDACTED"), None, "already redacted");
    }

    #[test]
    fn emails_and_bearer_tokens() {
        let r = redactor();
        assert_eq!(
            r.redact("to bob@example.com.").as_deref(),
            Some("to REDACTED.")
        );
        assert_eq!(r.redact("@handle and a@b"), None);
        assert_eq!(
            r.redact("authorization: bearer abc.def").as_deref(),
            Some("authorization: bearer REDACTED")
        );
    }
}
