//! Pure helpers for header lists and request targets: header lookup, splitting
//! a target into path and query, and `application/x-www-form-urlencoded`
//! query decoding.
//!
//! Nothing here touches the WASI bindings, so it is unit-tested on the host.

use std::borrow::Cow;

/// A list of header fields as they cross the WASI boundary: name and raw value.
pub(crate) type HeaderList = Vec<(String, Vec<u8>)>;

/// The first value of header `name`, compared ASCII case-insensitively.
pub(crate) fn find<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_slice())
}

/// Replaces every `name` header (case-insensitively) by one `name: value`.
pub(crate) fn set(headers: &mut HeaderList, name: String, value: Vec<u8>) {
    headers.retain(|(key, _)| !key.eq_ignore_ascii_case(&name));
    headers.push((name, value));
}

/// Splits a request target such as `/a/b?x=1#frag` into its path and raw
/// query. The fragment, which clients should never send, is dropped; an empty
/// path becomes `/`.
pub(crate) fn split_target(target: &str) -> (&str, Option<&str>) {
    let target = target.split_once('#').map_or(target, |(before, _)| before);
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    (if path.is_empty() { "/" } else { path }, query)
}

/// Decoded `name=value` pairs of a form-urlencoded query string, in order.
///
/// Empty segments (`a=1&&b=2`) are skipped and a segment without `=` has an
/// empty value.
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (name, value) = segment.split_once('=').unwrap_or((segment, ""));
            (form_decode(name), form_decode(value))
        })
}

/// Decodes one form-urlencoded component: `+` is a space and `%XX` a byte.
///
/// Malformed escapes are kept literally and invalid UTF-8 is replaced, so
/// decoding never fails. Borrows when there is nothing to decode.
pub(crate) fn form_decode(input: &str) -> Cow<'_, str> {
    if !input.contains(['+', '%']) {
        return Cow::Borrowed(input);
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            ) {
                (Some(high), Some(low)) => {
                    out.push((high << 4) | low);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[(&str, &str)]) -> HeaderList {
        entries
            .iter()
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn find_is_case_insensitive_and_returns_the_first_value() {
        let headers = list(&[
            ("content-type", "text/plain"),
            ("X-Tag", "a"),
            ("x-tag", "b"),
        ]);
        assert_eq!(find(&headers, "Content-Type"), Some(&b"text/plain"[..]));
        assert_eq!(find(&headers, "x-tag"), Some(&b"a"[..]));
        assert_eq!(find(&headers, "missing"), None);
    }

    #[test]
    fn set_replaces_all_values_of_a_name() {
        let mut headers = list(&[("X-Tag", "a"), ("other", "1"), ("x-tag", "b")]);
        set(&mut headers, "x-tag".into(), b"c".to_vec());
        assert_eq!(headers, list(&[("other", "1"), ("x-tag", "c")]));
        set(&mut headers, "new".into(), b"n".to_vec());
        assert_eq!(find(&headers, "NEW"), Some(&b"n"[..]));
    }

    #[test]
    fn split_target_separates_path_query_and_fragment() {
        assert_eq!(split_target("/a/b?x=1&y"), ("/a/b", Some("x=1&y")));
        assert_eq!(split_target("/a"), ("/a", None));
        assert_eq!(split_target("/a?"), ("/a", Some("")));
        assert_eq!(split_target("/a?q#frag"), ("/a", Some("q")));
        assert_eq!(split_target("/a#frag?not-query"), ("/a", None));
        assert_eq!(split_target(""), ("/", None));
        assert_eq!(split_target("?x=1"), ("/", Some("x=1")));
    }

    #[test]
    fn query_pairs_decode_names_and_values() {
        let pairs: Vec<(String, String)> = query_pairs("a=1&&b=hello+world&c&d=%41%2f%zz&e=x=y")
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        let expected = [
            ("a", "1"),
            ("b", "hello world"),
            ("c", ""),
            ("d", "A/%zz"),
            ("e", "x=y"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        assert_eq!(pairs, expected);
    }

    #[test]
    fn form_decode_borrows_plain_input_and_survives_bad_escapes() {
        assert!(matches!(form_decode("plain"), Cow::Borrowed("plain")));
        assert_eq!(form_decode("%"), "%");
        assert_eq!(form_decode("%4"), "%4");
        assert_eq!(form_decode("caf%C3%A9"), "café");
        assert_eq!(form_decode("%FF"), "\u{FFFD}");
    }
}
