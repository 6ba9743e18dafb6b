//! Searching text eight bytes per loop iteration.
//!
//! In a plugin every loop iteration pays the agent's time-limit check (wasmtime's epoch check,
//! about seven instructions; a quarter of the example plugins' compiled code, see
//! docs/plugins.md), and `core`'s `memchr`, behind `str::find` and `split` with a char, costs more
//! to set up than the few bytes of a path segment it searches. Looking at a word of eight bytes
//! per iteration pays the check once per eight bytes.

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);

#[inline(always)]
fn word_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// 0x80 in every byte of `word` that is one of `set`, 0 in the others (exact: no borrow from one
/// byte reaches the next).
#[inline(always)]
fn matches<const N: usize>(word: u64, set: [u8; N]) -> u64 {
    let mut found = 0;
    for byte in set {
        let diff = word ^ (ONES * u64::from(byte));
        // A byte's high bit stays clear exactly when the byte is zero.
        found |= !(((diff & LOW7) + LOW7) | diff | LOW7);
    }
    found
}

/// The position of the first byte of `bytes` that is one of `set`.
///
/// ```
/// use http_autoinstrument_plugin::bytes::position_of_any;
/// assert_eq!(position_of_any(b"/users/42?page=2", [b'?', b'#']), Some(9));
/// assert_eq!(position_of_any(b"/users/42", [b'?', b'#']), None);
/// ```
#[inline]
pub fn position_of_any<const N: usize>(bytes: &[u8], set: [u8; N]) -> Option<usize> {
    let len = bytes.len();
    if len < 8 {
        return bytes.iter().position(|b| set.contains(b));
    }
    let mut at = 0;
    while at + 8 <= len {
        let found = matches(word_at(bytes, at), set);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    if at == len {
        return None;
    }
    // The last eight bytes, of which the first `seen` were searched above.
    let last = len - 8;
    let seen = at - last;
    let found = matches(word_at(bytes, last), set) >> (seen * 8);
    (found != 0).then(|| at + (found.trailing_zeros() / 8) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_byte_of_the_set_at_every_position_and_length() {
        // Every byte value as the needle's neighbour, so a borrow or carry between bytes would
        // show as a false match or a miss.
        for len in 0..=25usize {
            for filler in [b'a', 0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, b'/' - 1, b'/' + 1] {
                let plain = vec![filler; len];
                let expected = plain.iter().position(|b| [b'/', b'?'].contains(b));
                assert_eq!(
                    position_of_any(&plain, [b'/', b'?']),
                    expected,
                    "{len} x {filler:#x}"
                );
                for at in 0..len {
                    for needle in [b'/', b'?'] {
                        let mut s = plain.clone();
                        s[at] = needle;
                        let expected = s.iter().position(|b| [b'/', b'?'].contains(b));
                        assert_eq!(
                            position_of_any(&s, [b'/', b'?']),
                            expected,
                            "{needle:#x} at {at} of {len}, filler {filler:#x}"
                        );
                        if at + 1 < len {
                            s[at + 1] = b'?';
                            assert_eq!(position_of_any(&s, [b'/', b'?']), expected);
                        }
                    }
                }
            }
        }
        for value in 0..=255u8 {
            let s = [b'x', value, b'x', b'x', b'x', b'x', b'x', b'x', b'x', value];
            let expected = s.iter().position(|&b| b == 0x2f);
            assert_eq!(position_of_any(&s, [0x2f]), expected, "{value:#x}");
        }
    }
}
