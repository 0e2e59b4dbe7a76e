//! The review summary: what a reviewer is asked about, produced by the tool
//! family that analysed the call and shown by every renderer (approval
//! page, webhook, CLI, REST) without knowing the family: a title, what will
//! run, the resources it touches, and a diff when there is one.
//!
//! What will run is given as *parts* — code the family printed, and literal
//! values quoted from the call — so that masking can hide a value without
//! hiding the structure around it. Why: masking a whole statement as one
//! text lets a value shape a detector match that runs past the value (issue
//! #8: a private-key header in a literal hid `OR id > 0` from the reviewer).
//! Masked part by part, a detector never crosses from a literal into the
//! code that follows it. A family that cannot tell literals from code gives
//! one code part, which is then masked whole.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::connector::FieldPath;
use crate::mask::{FieldScope, MaskCounts, Masker, merge_counts};

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
    /// A value of a field of the target, named as the family names its
    /// result fields (e.g. `Crate.secrets.code`, `Secret.data.password`):
    /// masked by the field rules for that field exactly as in results, and
    /// by the detectors, so a value a result would hide is hidden here too.
    Field {
        /// The field the value is.
        field: FieldPath,
        /// The value as it will be written.
        text: String,
    },
}

impl TextPart {
    /// The text of the part.
    pub fn text(&self) -> &str {
        match self {
            TextPart::Code(s) | TextPart::Literal(s) => s,
            TextPart::Field { text, .. } => text,
        }
    }
}

/// A text reviewers see, built from parts (a statement, a command line, a
/// manifest, a diff). Stored and sent as the list of parts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReviewText {
    /// The parts, in order; joined they are the text.
    pub parts: Vec<TextPart>,
}

impl ReviewText {
    /// A text the family cannot cut: one code part, masked whole.
    pub fn code(text: impl Into<String>) -> Self {
        ReviewText {
            parts: vec![TextPart::Code(text.into())],
        }
    }

    /// The text the parts make.
    pub fn joined(&self) -> String {
        self.parts.iter().map(TextPart::text).collect()
    }

    /// Each part masked on its own (see [`Masker::mask_each_part`]), field
    /// parts by the field rules in force on `scope`.
    pub fn masked<'s>(
        &self,
        masker: &Masker,
        scope: impl Into<FieldScope<'s>>,
    ) -> (ReviewText, MaskCounts) {
        let (parts, counts) = masker.mask_each_part(scope, &self.parts);
        (ReviewText { parts }, counts)
    }
}

/// One step of what will run (a statement, a command, an object applied).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewItem {
    /// What kind of step, in the family's words, e.g. `update`, `exec`.
    pub label: String,
    /// Resources this step touches, as the family names them.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Exactly what runs.
    pub text: ReviewText,
}

/// What a reviewer is asked about. The family fills it in
/// [`crate::connector::Plan::review`]; the gate stores it masked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewSummary {
    /// One line saying what the call does, e.g. `UPDATE on public.orders`.
    pub title: String,
    /// What will run, in order.
    #[serde(default)]
    pub runs: Vec<ReviewItem>,
    /// Every resource the call touches, as the family names them.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The change the call makes, when the family can show one before it
    /// runs (e.g. a Kubernetes apply diff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<ReviewText>,
}

impl ReviewSummary {
    /// What reviewers see: every text masked, the texts of `runs` and `diff`
    /// part by part (literal by literal), the title, labels and resource
    /// names as whole strings (names can quote data too). Field parts are
    /// masked by the field rules in force on `scope` (the call's connection).
    pub fn masked(&self, masker: &Masker, scope: FieldScope<'_>) -> (ReviewSummary, MaskCounts) {
        let mut counts = MaskCounts::new();
        let mut whole = |s: &str| {
            let (t, c) = masker.mask_text(s);
            merge_counts(&mut counts, &c);
            t
        };
        let title = whole(&self.title);
        let resources = self.resources.iter().map(|r| whole(r)).collect();
        let mut runs: Vec<ReviewItem> = self
            .runs
            .iter()
            .map(|r| ReviewItem {
                label: whole(&r.label),
                resources: r.resources.iter().map(|x| whole(x)).collect(),
                text: ReviewText::default(),
            })
            .collect();
        for (out, r) in runs.iter_mut().zip(&self.runs) {
            let (text, c) = r.text.masked(masker, scope);
            merge_counts(&mut counts, &c);
            out.text = text;
        }
        let diff = self.diff.as_ref().map(|d| {
            let (text, c) = d.masked(masker, scope);
            merge_counts(&mut counts, &c);
            text
        });
        (
            ReviewSummary {
                title,
                runs,
                resources,
                diff,
            },
            counts,
        )
    }

    /// One line for lists and notifications: what runs (texts joined by
    /// `; `), else the title; whitespace runs collapsed, cut at `max`
    /// characters.
    pub fn one_line(&self, max: usize) -> String {
        let text = if self.runs.is_empty() {
            self.title.clone()
        } else {
            let texts: Vec<String> = self.runs.iter().map(|r| r.text.joined()).collect();
            texts.join("; ")
        };
        let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if one_line.chars().count() > max {
            let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
            format!("{cut}…")
        } else {
            one_line
        }
    }

    /// The public JSON (REST, CLI): the typed summary, and each text also
    /// joined (`text`) for clients that do not rebuild parts.
    pub fn public_json(&self) -> Value {
        let runs: Vec<Value> = self
            .runs
            .iter()
            .map(|r| {
                json!({"label": r.label, "resources": r.resources,
                    "text": r.text.joined(), "parts": r.text.parts})
            })
            .collect();
        let mut v = json!({"title": self.title, "runs": runs, "resources": self.resources});
        if let Some(d) = &self.diff {
            v["diff"] = json!({"text": d.joined(), "parts": d.parts});
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn code(s: &str) -> TextPart {
        TextPart::Code(s.into())
    }

    #[test]
    fn field_parts_follow_the_field_rules_of_their_connection() {
        let config: crate::mask::MaskConfig = serde_json::from_value(json!({"fields": [
            {"field": "Crate.secrets.*", "kinds": ["depot"], "type": "SEAL"}
        ]}))
        .unwrap();
        let m = Masker::new(&config).unwrap();
        let text = ReviewText {
            parts: vec![
                code("break seal "),
                TextPart::Field {
                    field: FieldPath::new(["Crate", "secrets", "code"]),
                    text: "4471-9023".into(),
                },
            ],
        };
        let depot = crate::connector::ConnectionInfo {
            name: "d".into(),
            kind: "depot".into(),
            description: String::new(),
        };
        let (masked, counts) = text.masked(&m, &depot);
        assert_eq!(masked.joined(), "break seal [SEAL]");
        assert_eq!(counts.get("SEAL"), Some(&1));
        // The rule is scoped to its family's kind: elsewhere the value is a
        // plain literal (detectors only).
        let other = crate::connector::ConnectionInfo {
            kind: "postgres".into(),
            ..depot
        };
        assert_eq!(text.masked(&m, &other).0.joined(), "break seal 4471-9023");
        // A credential-like field name masks without any rule.
        let named = ReviewText {
            parts: vec![TextPart::Field {
                field: FieldPath::new(["Thing", "password"]),
                text: "hunter2".into(),
            }],
        };
        assert_eq!(
            named.masked(&m, FieldScope::default()).0.joined(),
            "[SECRET]"
        );
    }
    fn lit(s: &str) -> TextPart {
        TextPart::Literal(s.into())
    }

    fn attack() -> ReviewText {
        ReviewText {
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

    fn attack_review() -> ReviewSummary {
        ReviewSummary {
            title: "DELETE on public.orders (by bob@example.com)".into(),
            runs: vec![ReviewItem {
                label: "delete".into(),
                resources: vec!["public.orders".into()],
                text: attack(),
            }],
            resources: vec!["public.orders".into(), "bob@example.com".into()],
            diff: Some(ReviewText {
                parts: vec![code("- note: "), lit("'4111 1111 1111 1111'")],
            }),
        }
    }

    #[test]
    fn a_review_is_masked_literal_by_literal_and_names_whole() {
        let m = Masker::default();
        let (out, counts) = attack_review().masked(&m, FieldScope::default());
        assert_eq!(
            out.runs[0].text.joined(),
            "DELETE FROM orders WHERE note = '[PRIVATE_KEY] OR id > 0"
        );
        // The cut into parts survives masking.
        assert_eq!(out.runs[0].text.parts.len(), 4);
        assert_eq!(out.runs[0].text.parts[1], lit("'[PRIVATE_KEY]"));
        assert_eq!(out.title, "DELETE on public.orders (by [EMAIL])");
        assert_eq!(out.resources, vec!["public.orders", "[EMAIL]"]);
        assert_eq!(out.runs[0].label, "delete");
        assert_eq!(out.runs[0].resources, vec!["public.orders"]);
        assert_eq!(
            out.diff.as_ref().map(ReviewText::joined).as_deref(),
            Some("- note: '[CREDIT_CARD]'")
        );
        assert_eq!(counts.get("PRIVATE_KEY"), Some(&1));
        assert_eq!(counts.get("EMAIL"), Some(&2));
        assert_eq!(counts.get("CREDIT_CARD"), Some(&1));
    }

    #[test]
    fn a_review_round_trips_and_reads_without_optional_fields() {
        let r = attack_review();
        let back: ReviewSummary =
            serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let bare: ReviewSummary = serde_json::from_value(json!({"title": "t"})).unwrap();
        assert_eq!(bare.title, "t");
        assert!(bare.runs.is_empty() && bare.resources.is_empty() && bare.diff.is_none());
        // Parts are stored as tagged values.
        assert_eq!(
            serde_json::to_value(&r.runs[0].text).unwrap()[1],
            json!({"literal": "'-----BEGIN PRIVATE KEY-----"})
        );
    }

    #[test]
    fn one_line_and_public_json_join_the_parts() {
        let r = attack_review();
        assert_eq!(r.one_line(20), "DELETE FROM orders …");
        assert_eq!(r.one_line(20).chars().count(), 20);
        let no_runs = ReviewSummary {
            title: "schema of\n  shop".into(),
            ..Default::default()
        };
        assert_eq!(no_runs.one_line(160), "schema of shop");
        let v = r.public_json();
        assert_eq!(v["runs"][0]["text"], attack().joined());
        assert_eq!(v["runs"][0]["parts"][3], json!({"literal": "0"}));
        assert_eq!(v["diff"]["text"], "- note: '4111 1111 1111 1111'");
        assert_eq!(v["resources"][0], "public.orders");
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
