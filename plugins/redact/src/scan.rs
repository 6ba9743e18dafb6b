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
    pub fn redact(&self, s: &str) -> Option<String> {
        // One table lookup per byte, no branches: this pass runs over every string of every
        // span, so it is most of the plugin's time.
        let (mut seen, mut digits) = (0u8, 0usize);
        for &b in s.as_bytes() {
            seen |= CLASS[b as usize];
            digits += usize::from(b.is_ascii_digit());
        }
        let (has_eq, has_at, has_b) = (seen & EQ != 0, seen & AT != 0, seen & B != 0);
        let mut out: Option<String> = None;
        if has_eq && !self.params.is_empty() {
            apply(&mut out, s, |t| self.query_params(t));
        }
        if has_b && self.bearer_tokens {
            apply(&mut out, s, |t| self.bearer(t));
        }
        if has_at && self.emails {
            apply(&mut out, s, |t| self.email(t));
        }
        if digits >= 13 && self.card_numbers {
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
