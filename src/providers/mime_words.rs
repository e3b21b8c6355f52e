//! Decoding of RFC 2047 MIME encoded-words (`=?UTF-8?B?...?=`) in subjects.

use base64::Engine;

/// Decodes every encoded-word in `input`; text that is not a valid encoded-word is kept as-is.
/// Whitespace between two adjacent encoded-words is dropped, as RFC 2047 requires.
pub fn decode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at(start);
        match decode_word(candidate) {
            Some((decoded, used)) => {
                if !(last_was_word && before.chars().all(char::is_whitespace)) {
                    out.push_str(before);
                }
                out.push_str(&decoded);
                rest = &candidate[used..];
                last_was_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &candidate[2..];
                last_was_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Longest encoded-word looked for. RFC 2047 allows 75 bytes; some mailers write
/// longer ones, so a little more is tolerated. The bound keeps decoding linear: each
/// `=?` looks at most this far ahead for its `?=`, however long the input.
const MAX_WORD_BYTES: usize = 256;

/// Decodes one encoded-word at the start of `s`; returns the text and bytes consumed.
fn decode_word(s: &str) -> Option<(String, usize)> {
    let mut window = s.len().min(MAX_WORD_BYTES);
    while !s.is_char_boundary(window) {
        window -= 1;
    }
    let body = s[..window].strip_prefix("=?")?;
    let (charset, body) = body.split_once('?')?;
    let (encoding, body) = body.split_once('?')?;
    let end = body.find("?=")?;
    let payload = &body[..end];
    if payload.contains(char::is_whitespace) {
        return None;
    }
    let used = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
    let bytes = match encoding {
        "B" | "b" => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .or_else(|_| {
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(payload.trim_end_matches('='))
            })
            .ok()?,
        "Q" | "q" => decode_q(payload)?,
        _ => return None,
    };
    // RFC 2231 allows a language suffix: `UTF-8*en`.
    let label = charset.split('*').next().unwrap_or(charset);
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes())?;
    let (text, _, had_errors) = encoding.decode(&bytes);
    (!had_errors).then(|| (text.into_owned(), used))
}

fn decode_q(payload: &str) -> Option<Vec<u8>> {
    let bytes = payload.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => out.push(b' '),
            b'=' => {
                let hex = payload.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(decode("example subject"), "example subject");
        assert_eq!(decode("a =? b"), "a =? b");
    }

    #[test]
    fn base64_utf8_words_are_decoded() {
        assert_eq!(decode("=?UTF-8?B?5rWL6K+V6YKu5Lu2?="), "测试邮件");
    }

    #[test]
    fn adjacent_words_join_without_the_space_between() {
        assert_eq!(
            decode("=?UTF-8?B?5rWL6K+V?= =?UTF-8?B?6YKu5Lu2?="),
            "测试邮件"
        );
        assert_eq!(
            decode("Re: =?utf-8?q?caf=C3=A9_au_lait?= !"),
            "Re: café au lait !"
        );
    }

    #[test]
    fn other_charsets_are_decoded() {
        // "测试" in GB2312.
        assert_eq!(decode("=?GB2312?B?suLK1A==?="), "测试");
        assert_eq!(decode("=?ISO-8859-1?Q?Caf=E9?="), "Café");
    }

    #[test]
    fn broken_words_are_kept_verbatim() {
        assert_eq!(decode("=?UTF-8?B?***?="), "=?UTF-8?B?***?=");
        assert_eq!(decode("=?X-UNKNOWN?B?YQ==?="), "=?X-UNKNOWN?B?YQ==?=");
    }

    #[test]
    fn words_longer_than_the_bound_are_kept_verbatim() {
        let long = format!("=?UTF-8?Q?{}?=", "a".repeat(300));
        assert_eq!(decode(&long), long);
    }

    #[test]
    fn many_unterminated_words_decode_in_linear_time() {
        // 240 KB of `=?x`: each candidate used to scan to the end for `?=`.
        let input = "=?x".repeat(80_000);
        assert_eq!(decode(&input), input);
        let mut words = "=?UTF-8?B?5rWL6K+V?= ".repeat(10_000);
        words.push_str("=?x");
        assert!(decode(&words).starts_with("测试测试"));
    }
}
