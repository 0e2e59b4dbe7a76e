//! Small text helpers: source positions for diagnostics (byte offsets as
//! 1-based `line:col`, the way `file:line:col: message` reports them), and
//! the characters that must never reach a terminal or an identity raw
//! (control, line-separator and invisible/bidi format characters).

use std::borrow::Cow;

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Join displayable errors one per line.
pub fn lines<E: std::fmt::Display>(errors: &[E]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Control characters (C0, DEL, C1), line/paragraph separators and the
/// invisible or bidi format characters (Unicode `Cf`: zero-width joiners,
/// bidi embeddings, overrides and isolates, BOM, tags...) and other
/// characters that render as nothing (Hangul fillers, variation selectors):
/// characters that can forge lines, move a terminal's cursor, hide code from
/// a reviewer or make two names look alike. One list for identities,
/// terminal output and SQL text.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{E0000}'..='\u{E007F}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
        )
}

/// `s` with every [unsafe](is_unsafe_char) character written as `\u{…}`, for
/// text printed to a terminal: a stored value can never inject escapes or
/// fake lines. Borrowed when there is nothing to escape.
pub fn escape_for_terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Serialized JSON made safe for a terminal: every [unsafe](is_unsafe_char)
/// character left raw by the serializer (DEL, C1 controls, bidi and other
/// format characters; it escapes only C0) becomes a `\uXXXX` escape. The
/// result parses to the same value: such characters only occur inside
/// strings, where the escape means the same character. A raw `\n` is kept:
/// serializers escape it inside strings, so it is the pretty-printer's.
pub fn json_for_terminal(json: &str) -> Cow<'_, str> {
    let unsafe_in_json = |c: char| c != '\n' && is_unsafe_char(c);
    if !json.chars().any(unsafe_in_json) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if unsafe_in_json(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn positions() {
        assert_eq!(super::line_col("ab\ncdé\nf", 0), (1, 1));
        assert_eq!(super::line_col("ab\ncdé\nf", 3), (2, 1));
        assert_eq!(super::line_col("ab\ncdé\nf", 8), (3, 1));
        assert_eq!(super::line_col("é", 1), (1, 1), "inside a char: no panic");
    }

    #[test]
    fn unsafe_characters_are_escaped() {
        use super::{escape_for_terminal, is_unsafe_char, json_for_terminal};
        for c in [
            '\n',
            '\r',
            '\t',
            '\x1b',
            '\x7f',
            '\u{9b}',
            '\u{202e}',
            '\u{200b}',
            '\u{2028}',
            '\u{feff}',
            '\u{e0041}',
        ] {
            assert!(is_unsafe_char(c), "{c:?}");
        }
        for c in ['a', ' ', 'é', '漢', '-', '@', '\\'] {
            assert!(!is_unsafe_char(c), "{c:?}");
        }
        assert_eq!(escape_for_terminal("alice"), "alice");
        assert_eq!(
            escape_for_terminal("eve\n   1  forged\x1b[2J\u{202e}"),
            "eve\\u{a}   1  forged\\u{1b}[2J\\u{202e}"
        );
        let v = serde_json::json!({"sub": "a\u{9b}b\u{202e}c\x7f\n\u{e0041}"});
        for raw in [
            serde_json::to_string(&v).unwrap(),
            serde_json::to_string_pretty(&v).unwrap(),
        ] {
            let safe = json_for_terminal(&raw);
            assert!(
                !safe.chars().any(|c| c != '\n' && is_unsafe_char(c)),
                "{safe}"
            );
            let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
            assert_eq!(back, v, "same value");
        }
    }
}
