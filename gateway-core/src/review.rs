//! Review texts: the part of a plan's summary that quotes the call (a
//! statement, a command line, a manifest), given by the connector as
//! *parts* — code it printed, and literal values quoted from the call — so
//! that masking can hide a value without hiding the structure around it.
//!
//! Why: masking a whole statement as one text lets a value shape a detector
//! match that runs past the value (issue #8: a private-key header in a
//! literal hid `OR id > 0` from the reviewer). Masked part by part, a
//! detector never crosses from a literal into the code that follows it.
//!
//! The core knows no language: a connector that can tell its literals from
//! its code fills [`crate::connector::Plan::review`]; one that cannot leaves
//! it empty and its summary is masked as a whole, as before.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::mask::{MaskCounts, Masker, merge_counts};

/// One part of a review text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextPart {
    /// Structure: keywords, names, operators. Masked on its own (names can
    /// quote data too), never together with a literal.
    Code(String),
    /// One literal value exactly as written (quotes included). Masked on its
    /// own; the end of the code before it is context for credential keys
    /// (`password = 'x'`), but a match never reaches outside the literal.
    Literal(String),
}

/// A string of a plan's summary that reviewers see built from parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewText {
    /// JSON pointer into the summary of the string to replace, e.g. `/0/sql`.
    pub pointer: String,
    /// The parts, in order; joined they are the text.
    pub parts: Vec<TextPart>,
}

impl ReviewText {
    /// The unmasked text the parts make.
    pub fn joined(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                TextPart::Code(s) | TextPart::Literal(s) => s.as_str(),
            })
            .collect()
    }
}

/// The summary reviewers (approval page, REST, webhook) see: every string a
/// [`ReviewText`] names is rebuilt from its parts masked one by one; every
/// other string is masked as usual. A pointer that names no string in the
/// summary is ignored (that string, if any, is masked whole).
pub fn masked_summary(
    masker: &Masker,
    summary: &Value,
    review: &[ReviewText],
) -> (Value, MaskCounts) {
    let mut out = summary.clone();
    let mut rebuilt = Vec::with_capacity(review.len());
    for r in review {
        if let Some(slot @ Value::String(_)) = out.pointer_mut(&r.pointer) {
            // Out of the whole-value walk below: masked part by part instead.
            *slot = Value::Null;
            rebuilt.push(r);
        }
    }
    let mut counts = masker.mask_value("", &mut out, &[]);
    for r in rebuilt {
        let (text, c) = masker.mask_parts(&r.parts);
        merge_counts(&mut counts, &c);
        if let Some(slot) = out.pointer_mut(&r.pointer) {
            *slot = Value::String(text);
        }
    }
    (out, counts)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn code(s: &str) -> TextPart {
        TextPart::Code(s.into())
    }
    fn lit(s: &str) -> TextPart {
        TextPart::Literal(s.into())
    }

    fn attack() -> ReviewText {
        ReviewText {
            pointer: "/0/sql".into(),
            parts: vec![
                code("DELETE FROM orders WHERE note = "),
                lit("'-----BEGIN PRIVATE KEY-----"),
                code(" OR id > "),
                lit("0"),
            ],
        }
    }

    #[test]
    fn a_literal_is_masked_on_its_own_and_the_structure_stays() {
        let m = Masker::default();
        // Even an unterminated literal part cannot take the code after it.
        let (text, counts) = m.mask_parts(&attack().parts);
        assert_eq!(
            text,
            "DELETE FROM orders WHERE note = '[PRIVATE_KEY] OR id > 0"
        );
        assert_eq!(counts.get("PRIVATE_KEY"), Some(&1));
    }

    #[test]
    fn credential_keys_before_a_literal_still_mask_it() {
        let m = Masker::default();
        let (text, _) = m.mask_parts(&[
            code("UPDATE users SET password = "),
            lit("'hunter2'"),
            code(" WHERE email = "),
            lit("'bob@example.com'"),
            code(" OR id IN ("),
            lit("4111111111111111"),
            code(")"),
        ]);
        assert_eq!(
            text,
            "UPDATE users SET password = '[SECRET]' WHERE email = '[EMAIL]' OR id IN ([CREDIT_CARD])"
        );
        // Code is masked too, but only within itself.
        let (text, _) = m.mask_parts(&[code(r#"SELECT 1 AS "bob@example.com" FROM t"#)]);
        assert_eq!(text, r#"SELECT 1 AS "[EMAIL]" FROM t"#);
    }

    #[test]
    fn matches_never_cross_parts() {
        let m = Masker::default();
        // A card split over two literals is two harmless numbers, and a
        // match cannot start in code and run into a literal.
        let (text, _) = m.mask_parts(&[lit("'4111 1111'"), code(" || "), lit("' 1111 1111'")]);
        assert_eq!(text, "'4111 1111' || ' 1111 1111'");
    }

    #[test]
    fn summary_strings_named_by_a_review_are_rebuilt_the_rest_masked_whole() {
        let m = Masker::default();
        let summary = json!([{"kind": "delete", "tables": ["public.orders"],
            "sql": "DELETE FROM orders WHERE note = '-----BEGIN PRIVATE KEY-----' OR id > 0",
            "note": "by bob@example.com"}]);
        let (out, counts) = masked_summary(&m, &summary, &[attack()]);
        assert_eq!(
            out[0]["sql"],
            "DELETE FROM orders WHERE note = '[PRIVATE_KEY] OR id > 0"
        );
        assert_eq!(out[0]["note"], "by [EMAIL]");
        assert_eq!(out[0]["tables"], json!(["public.orders"]));
        assert_eq!(counts.get("PRIVATE_KEY"), Some(&1));
        // A pointer to nothing changes nothing else.
        let stray = ReviewText {
            pointer: "/7/sql".into(),
            parts: vec![code("x")],
        };
        let (out, _) = masked_summary(&m, &summary, &[stray]);
        assert_eq!(
            out[0]["sql"],
            "DELETE FROM orders WHERE note = '[PRIVATE_KEY]' OR id > 0"
        );
        assert!(out.get(7).is_none());
    }

    #[test]
    fn every_builtin_type_in_a_literal_leaves_the_predicate_visible() {
        let m = Masker::default();
        for (ty, sample) in [
            ("PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----\nMIIEow"),
            ("SECRET", "password=hunter2 OR"),
            (
                "JWT",
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            ),
            ("AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE"),
            ("CREDIT_CARD", "4111 1111 1111 1111"),
            ("IBAN", "GB82 WEST 1234 5698 7654 32"),
            ("EMAIL", "bob@example.com"),
            ("US_SSN", "536-22-1947"),
            ("IP_ADDRESS", "10.0.12.7"),
            ("PHONE", "+44 20 7946 0958"),
        ] {
            // Unterminated on purpose: only the part boundary stops a match.
            let (text, counts) = m.mask_parts(&[
                code("DELETE FROM orders WHERE note = "),
                lit(&format!("'{sample}")),
                code(" OR id > "),
                lit("0"),
            ]);
            assert!(text.ends_with(" OR id > 0"), "{ty}: {text}");
            assert!(!text.contains(sample), "{ty}: {text}");
            assert_eq!(counts.get(ty), Some(&1), "{ty}: {text}");
        }
    }

    #[test]
    fn joined_is_the_unmasked_text() {
        assert_eq!(
            attack().joined(),
            "DELETE FROM orders WHERE note = '-----BEGIN PRIVATE KEY----- OR id > 0"
        );
    }
}
