//! Hides data values that database errors quote, before the error leaves
//! the connector (issue #8: `SELECT ('k'||card_number)::int` returned the
//! card in `invalid input syntax for type integer: "k4111111111111111"`).
//!
//! The gateway masks error text with its detectors too; this is the layer
//! that does not depend on a detector recognising the value: wherever a
//! PostgreSQL, MySQL/MariaDB or SQLite message is known to quote a *value*,
//! the value becomes `[value hidden]`, whatever it looks like. Identifiers
//! (`relation "x" does not exist`, `for key 'email'`, `column 'c'`) and the
//! SQL the agent wrote (`syntax error at or near "x"`) stay visible.
//!
//! A quoted value may itself contain the quote character (`'"' || card`),
//! so a value runs to the *last* closing quote before the text that follows
//! it in that message (`" (SQLSTATE`, `' for column`, `' for key`...), not
//! to the first quote.

/// What replaces a hidden value.
pub const HIDDEN: &str = "[value hidden]";

/// One message shape that quotes a value: the text just before the value
/// (ending in its opening quote), the closing quote, and the texts that may
/// follow the closing quote (first found wins; else the last closing quote
/// of the text, else the end of the text).
struct Shape {
    before: &'static str,
    close: char,
    after: &'static [&'static str],
}

const SHAPES: &[Shape] = &[
    // PostgreSQL: `invalid input syntax for type integer: "…"`, `invalid
    // input value for enum mood: "…"`, `malformed array literal: "…"`,
    // `date/time field value out of range: "…"`, `invalid hexadecimal
    // digit: "…"`...: PostgreSQL puts a value after `: "`.
    Shape {
        before: ": \"",
        close: '"',
        after: &[" (SQLSTATE", "; hint:", "\n"],
    },
    // PostgreSQL: `value "…" is out of range for type integer`.
    Shape {
        before: "value \"",
        close: '"',
        after: &[" is out of range"],
    },
    // PostgreSQL DETAIL lines, should a driver include them:
    // `Key (email)=(bob@example.com) already exists.`,
    // `Key (customer_id)=(7) is not present in table "customers".`
    Shape {
        before: ")=(",
        close: ')',
        after: &[" already exists", " is not present", " conflicts with"],
    },
    // PostgreSQL DETAIL: `Failing row contains (1, bob, 4111…).`
    Shape {
        before: "Failing row contains (",
        close: ')',
        after: &[".\n", ". (SQLSTATE", " (SQLSTATE", "\n"],
    },
    // MySQL/MariaDB: `Incorrect integer value: '…' for column 'c' at row 1`,
    // `Truncated incorrect DOUBLE value: '…'`, `Incorrect string value: '…'`,
    // `Incorrect datetime value: '…'`.
    Shape {
        before: "value: '",
        close: '\'',
        after: &[
            " for column",
            " at row",
            " for function",
            " (error",
            " (sqlite code",
        ],
    },
    // MySQL/MariaDB: `Duplicate entry '…' for key 'email'`.
    Shape {
        before: "Duplicate entry '",
        close: '\'',
        after: &[" for key"],
    },
    // MySQL/MariaDB: `Incorrect string value: '…'` without a colon, and
    // `Illegal … value '…'`.
    Shape {
        before: " value '",
        close: '\'',
        after: &[" for column", " at row", " (error"],
    },
];

/// `text` with every value that a known message shape quotes replaced by
/// [`HIDDEN`]. Never panics; text no shape matches comes back unchanged.
pub fn hide_values(text: &str) -> String {
    let mut out = text.to_string();
    for shape in SHAPES {
        out = hide_shape(&out, shape);
    }
    out
}

fn hide_shape(text: &str, shape: &Shape) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(shape.before) {
        let value_start = at + shape.before.len();
        let tail = &rest[value_start..];
        let close_at = value_end(tail, shape);
        out.push_str(&rest[..value_start]);
        out.push_str(HIDDEN);
        match close_at {
            Some(end) => rest = &tail[end..],
            None => {
                // No closing quote: the value runs to the end of the text.
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Byte offset in `tail` (the text after the opening quote) of the value's
/// closing quote: the one before the *last* following text a shape names
/// (a value can contain a fake `' for key` of its own, never the real one
/// after it), else the last closing quote of the line.
fn value_end(tail: &str, shape: &Shape) -> Option<usize> {
    for after in shape.after {
        let marker = format!("{}{after}", shape.close);
        if let Some(i) = tail.rfind(&marker) {
            return Some(i);
        }
    }
    let line_end = tail.find('\n').unwrap_or(tail.len());
    tail[..line_end].rfind(shape.close)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidden(text: &str) -> String {
        hide_values(text)
    }

    #[test]
    fn postgres_values_are_hidden_identifiers_stay() {
        assert_eq!(
            hidden(
                r#"invalid input syntax for type integer: "k4111111111111111" (SQLSTATE 22P02)"#
            ),
            r#"invalid input syntax for type integer: "[value hidden]" (SQLSTATE 22P02)"#
        );
        // A quote inside the value does not end it early.
        assert_eq!(
            hidden(
                r#"invalid input syntax for type integer: ""4111111111111111" (SQLSTATE 22P02)"#
            ),
            r#"invalid input syntax for type integer: "[value hidden]" (SQLSTATE 22P02)"#
        );
        assert_eq!(
            hidden(
                r#"value "41111111111111111111" is out of range for type bigint (SQLSTATE 22003)"#
            ),
            r#"value "[value hidden]" is out of range for type bigint (SQLSTATE 22003)"#
        );
        assert_eq!(
            hidden("Key (email)=(bob@example.com) already exists."),
            "Key (email)=([value hidden]) already exists."
        );
        assert_eq!(
            hidden("Failing row contains (1, bob, 4111111111111111)."),
            "Failing row contains ([value hidden])."
        );
        for keep in [
            r#"relation "secret_table" does not exist (SQLSTATE 42P01)"#,
            r#"syntax error at or near "FROMM" (SQLSTATE 42601)"#,
            r#"column "x" does not exist (SQLSTATE 42703); hint: Perhaps you meant to reference the column "t.y"."#,
            r#"duplicate key value violates unique constraint "customers_email_key" (SQLSTATE 23505)"#,
            "operator does not exist: text = integer (SQLSTATE 42883)",
        ] {
            assert_eq!(hidden(keep), keep);
        }
    }

    #[test]
    fn mysql_values_are_hidden_identifiers_stay() {
        assert_eq!(
            hidden(
                "Incorrect integer value: 'k4111111111111111' for column `shop`.`t`.`n` at row 1 (error 1366)"
            ),
            "Incorrect integer value: '[value hidden]' for column `shop`.`t`.`n` at row 1 (error 1366)"
        );
        assert_eq!(
            hidden("Truncated incorrect INTEGER value: 'k4111111111111111' (error 1292)"),
            "Truncated incorrect INTEGER value: '[value hidden]' (error 1292)"
        );
        assert_eq!(
            hidden("Duplicate entry 'bob@example.com' for key 'customers.email' (error 1062)"),
            "Duplicate entry '[value hidden]' for key 'customers.email' (error 1062)"
        );
        // A value that fakes the text after it is still hidden whole.
        assert_eq!(
            hidden("Duplicate entry 'a' for key '4111111111111111' for key 'email' (error 1062)"),
            "Duplicate entry '[value hidden]' for key 'email' (error 1062)"
        );
        for keep in [
            "Unknown column 'secret' in 'field list' (error 1054)",
            "Table 'shop.nope' doesn't exist (error 1146)",
            "Column 'email' cannot be null (error 1048)",
        ] {
            assert_eq!(hidden(keep), keep);
        }
    }

    #[test]
    fn unterminated_and_odd_text_never_panics() {
        assert_eq!(hidden(": \"abc"), format!(": \"{HIDDEN}"));
        for s in ["", ": \"", "value '", "é: \"é\"é", ")=("] {
            let _ = hidden(s);
        }
    }
}
