//! The request target as the client sent it (`Request.RequestURI`) to `url.path` and `url.query`
//! as Go's `url.ParseRequestURI` gives them to the handler: the path percent-decoded, the query
//! raw. The probe copies the target rather than `Request.URL`'s fields because it is one string
//! next to the method (one read for both in HTTP/1) where the URL is a struct of its own.
use std::borrow::Cow;

/// `url.path` and `url.query` of a request target (`target` as copied; `truncated` when the probe
/// had to cut it, which then applies to whichever part the cut fell in).
pub fn split<'a>(
    target: &'a [u8],
    truncated: bool,
    method: &str,
) -> (Cow<'a, str>, Cow<'a, str>, Part) {
    let target = if truncated {
        without_cut_character(target)
    } else {
        target
    };
    let question = target.iter().position(|&b| b == b'?');
    let (path, query) = match question {
        Some(i) => (&target[..i], &target[i + 1..]),
        None => (target, &target[target.len()..]),
    };
    let cut = match (truncated, question) {
        (false, _) => Part::Neither,
        (true, None) => Part::Path,
        (true, Some(_)) => Part::Query,
    };
    (
        decode_path(path_of(path, method), cut == Part::Path),
        text(query),
        cut,
    )
}

/// `bytes` without the UTF-8 character a cut at a byte count may have left unfinished at its
/// end, so that a truncated value ends with whole characters (not U+FFFD) before its `…`.
pub fn without_cut_character(bytes: &[u8]) -> &[u8] {
    // A character takes at most 4 bytes: an unfinished one starts in the last 3.
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: its character started earlier
        }
        let length = match byte {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if length > back {
            &bytes[..bytes.len() - back]
        } else {
            bytes
        };
    }
    bytes
}

/// Which part of the target was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Neither,
    Path,
    Query,
}

/// The path of a target's part before `?`: origin form (`/users/7`) and `*` as they are; the path
/// of an absolute form (`http://shop/users/7`, sent to proxies); nothing for CONNECT's authority
/// form (`shop:443`).
fn path_of<'a>(raw: &'a [u8], method: &str) -> &'a [u8] {
    if raw.first() == Some(&b'/') || raw == b"*" {
        return raw;
    }
    if method == "CONNECT" {
        return &[];
    }
    match find(raw, b"://") {
        Some(i) => {
            let after = &raw[i + 3..];
            match after.iter().position(|&b| b == b'/') {
                Some(slash) => &after[slash..],
                None => &[],
            }
        }
        None => raw,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Percent-decodes a path (`%2F` too, as `url.URL.Path` does); `+` stays `+`. An escape cut
/// short by truncation stays as it is; in a `cut` path, so does a character whose escapes were
/// cut short.
fn decode_path(raw: &[u8], cut: bool) -> Cow<'_, str> {
    if !raw.contains(&b'%') {
        return text(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let escaped = (raw[i] == b'%')
            .then(|| Some((hex(*raw.get(i + 1)?)? << 4) | hex(*raw.get(i + 2)?)?))
            .flatten();
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(raw[i]);
                i += 1;
            }
        }
    }
    if cut {
        let whole = without_cut_character(&out).len();
        let unfinished = out.split_off(whole);
        // Written back as the escapes they came from.
        for byte in unfinished {
            out.extend_from_slice(format!("%{byte:02X}").as_bytes());
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

/// Bytes as text: borrowed when UTF-8 (the common case), replaced characters otherwise.
pub fn text(bytes: &[u8]) -> Cow<'_, str> {
    // Request text is nearly always ASCII, which `is_ascii` checks several bytes at a time
    // where `from_utf8` decodes a short string byte by byte.
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        return Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(target: &str, method: &str) -> (String, String) {
        let (path, query, _) = split(target.as_bytes(), false, method);
        (path.into_owned(), query.into_owned())
    }

    #[test]
    fn text_is_borrowed_when_utf8_ascii_or_not_and_replaced_when_not() {
        assert!(matches!(text(b"q=1&page=2"), Cow::Borrowed("q=1&page=2")));
        assert!(matches!(text("q=café".as_bytes()), Cow::Borrowed("q=café")));
        assert_eq!(text(b"q=\xff1"), Cow::<str>::Owned("q=\u{FFFD}1".into()));
    }

    #[test]
    fn a_cut_inside_a_character_keeps_only_whole_characters() {
        // "é" is C3 A9, "€" E2 82 AC, "😀" F0 9F 98 80: cut after their first bytes.
        for (target, path) in [
            (&b"/caf\xc3"[..], "/caf"),
            (b"/\xe2\x82", "/"),
            (b"/a\xf0\x9f\x98", "/a"),
            (b"/caf\xc3\xa9", "/café"),
        ] {
            let (p, q, cut) = split(target, true, "GET");
            assert_eq!((p.as_ref(), q.as_ref(), cut), (path, "", Part::Path));
        }
        let (_, q, cut) = split(b"/s?q=caf\xc3", true, "GET");
        assert_eq!((q.as_ref(), cut), ("q=caf", Part::Query));
        // Escaped: a character whose escapes were cut stays escaped, not U+FFFD.
        let (p, _, _) = split(b"/caf%C3", true, "GET");
        assert_eq!(p, "/caf%C3");
        let (p, _, _) = split(b"/caf%C3%A9", true, "GET");
        assert_eq!(p, "/café");
        // Not cut: an invalid byte is what the client sent.
        let (p, _, _) = split(b"/caf\xc3", false, "GET");
        assert_eq!(p, "/caf\u{FFFD}");
        assert_eq!(without_cut_character(b""), b"");
        assert_eq!(without_cut_character(b"\xa9"), b"\xa9");
    }

    #[test]
    fn splits_origin_form_at_the_first_question_mark() {
        assert_eq!(parts("/users/7", "GET"), ("/users/7".into(), "".into()));
        assert_eq!(
            parts("/search?q=a?b&x=1", "GET"),
            ("/search".into(), "q=a?b&x=1".into())
        );
        assert_eq!(parts("/?", "GET"), ("/".into(), "".into()));
    }

    #[test]
    fn decodes_the_path_like_go_and_leaves_the_query_raw() {
        assert_eq!(
            parts("/a%20b/c%2Fd+e?x=%20y+z", "GET"),
            ("/a b/c/d+e".into(), "x=%20y+z".into())
        );
        assert_eq!(parts("/caf%C3%A9", "GET"), ("/café".into(), "".into()));
        // Not an escape (or cut short): kept as sent.
        assert_eq!(parts("/100%zz/%4", "GET"), ("/100%zz/%4".into(), "".into()));
        assert_eq!(parts("/%ff", "GET"), ("/\u{fffd}".into(), "".into()));
    }

    #[test]
    fn other_forms_give_the_path_go_gives_the_handler() {
        assert_eq!(
            parts("http://shop:8080/users/7?a=1", "GET"),
            ("/users/7".into(), "a=1".into())
        );
        assert_eq!(parts("http://shop", "GET"), ("".into(), "".into()));
        assert_eq!(parts("*", "OPTIONS"), ("*".into(), "".into()));
        assert_eq!(parts("shop:443", "CONNECT"), ("".into(), "".into()));
        assert_eq!(parts("", "CONNECT"), ("".into(), "".into()));
    }

    #[test]
    fn a_cut_is_reported_in_the_part_it_fell_in() {
        assert_eq!(split(b"/very/long", true, "GET").2, Part::Path);
        assert_eq!(split(b"/p?q=very-long", true, "GET").2, Part::Query);
        assert_eq!(split(b"/p?q=1", false, "GET").2, Part::Neither);
    }
}
