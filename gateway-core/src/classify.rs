//! Classification: which fields of a connection hold sensitive values, found
//! by sampling them, so that masking is safe without any configured rule.
//!
//! Family-neutral: a family lists its fields (SQL: `schema.table.column`),
//! reads a bounded number of non-null values of each with the server's
//! credentials, and hands them to a [`Classifier`], which runs the masker's
//! detectors on every value and judges the field: it is classified as type
//! `T` when `T` is found in at least `threshold` of the sampled values and in
//! at least `min_hits` of them (the type found in most values wins). Pinned
//! fields are classified without sampling; exempt fields are never sampled
//! nor classified. Classified fields are masked whole, in every value
//! computed from them ([`crate::connector::FieldOrigin::sensitive`]).
//!
//! The report ([`ClassificationReport`]) holds field names, types and counts,
//! never a sampled value: it is what the audit event of a run records.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use serde::Serialize;
use serde_json::Value;

use crate::connector::FieldPath;
use crate::mask::config::{ClassificationConfig, FieldSelector};
use crate::mask::{MaskConfigError, Masker};

/// Most values sampled per field that config may ask for.
pub const MAX_SAMPLE_ROWS: u64 = 10_000;

/// Longest prefix of a sampled value the detectors read (bytes).
const MAX_VALUE_BYTES: usize = 8 * 1024;

/// A glob pair: connection name and dotted field path, case-insensitive.
#[derive(Debug, Clone)]
struct Selector {
    connection: GlobMatcher,
    field: GlobMatcher,
}

impl Selector {
    fn new(connection: &str, field: &str) -> Result<Self, String> {
        let glob = |g: &str| {
            GlobBuilder::new(g)
                .case_insensitive(true)
                .literal_separator(false)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| format!("bad glob `{g}`: {e}"))
        };
        if field.trim().is_empty() {
            return Err("`column` is empty".into());
        }
        Ok(Selector {
            connection: glob(connection)?,
            field: glob(field)?,
        })
    }

    fn matches(&self, connection: &str, field: &FieldPath) -> bool {
        self.connection.is_match(connection) && self.field.is_match(field.to_string())
    }
}

/// The compiled `[masking.classification]` section with the masker whose
/// detectors judge sampled values. Cheap to share (`Arc` inside).
#[derive(Debug, Clone)]
pub struct Classifier {
    masker: Arc<Masker>,
    enabled: bool,
    sample_rows: u64,
    threshold: f64,
    min_hits: u64,
    interval: Duration,
    timeout: Duration,
    exempt: Vec<Selector>,
    pins: Vec<(Selector, String)>,
}

/// Check a `[masking.classification]` section: ranges, durations, globs and
/// pinned type names. Errors name the key.
pub fn validate(config: &ClassificationConfig) -> Result<(), MaskConfigError> {
    compile(config).map(|_| ())
}

type Compiled = (Vec<Selector>, Vec<(Selector, String)>);

fn compile(c: &ClassificationConfig) -> Result<Compiled, MaskConfigError> {
    let err = |m: String| MaskConfigError(format!("classification: {m}"));
    if c.sample_rows == 0 || c.sample_rows > MAX_SAMPLE_ROWS {
        return Err(err(format!(
            "sample_rows must be between 1 and {MAX_SAMPLE_ROWS}, not {}",
            c.sample_rows
        )));
    }
    if !(c.threshold > 0.0 && c.threshold <= 1.0) {
        return Err(err(format!(
            "threshold must be a share above 0 and at most 1 (e.g. 0.5), not {}",
            c.threshold
        )));
    }
    if c.min_hits == 0 {
        return Err(err("min_hits must be at least 1".into()));
    }
    if c.interval.0.is_zero() {
        return Err(err("interval must be longer than 0s".into()));
    }
    if c.timeout.0.is_zero() {
        return Err(err("timeout must be longer than 0s".into()));
    }
    let mut exempt = Vec::new();
    for (i, e) in c.exempt.iter().enumerate() {
        let s = match e {
            FieldSelector::Dotted(d) => match d.split_once('.') {
                Some((conn, field)) if !conn.is_empty() => Selector::new(conn, field),
                _ => Err(format!(
                    "`{d}` must be `connection.field`, e.g. `shop.public.customers.notes` or `*.*.*.notes`"
                )),
            },
            FieldSelector::Table(t) => Selector::new(&t.connection, &t.column),
        }
        .map_err(|m| err(format!("exempt[{i}]: {m}")))?;
        exempt.push(s);
    }
    let mut pins = Vec::new();
    for (i, p) in c.pin.iter().enumerate() {
        if !crate::mask::is_type_name(&p.type_name) {
            return Err(err(format!(
                "pin[{i}]: type `{}` must be upper case letters, digits and _",
                p.type_name
            )));
        }
        let s =
            Selector::new(&p.connection, &p.column).map_err(|m| err(format!("pin[{i}]: {m}")))?;
        pins.push((s, p.type_name.clone()));
    }
    Ok((exempt, pins))
}

/// What the sampled values of one field showed: how many were read, and in
/// how many each type was found. Holds no value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Non-null values read.
    pub sampled: u64,
    /// Per type, the number of sampled values it was found in.
    pub hits: BTreeMap<String, u64>,
}

fn dotted<S: serde::Serializer>(f: &FieldPath, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(f)
}

/// Why a field is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassifiedBy {
    /// Its sampled values.
    Sample,
    /// A `pin` in config.
    Pin,
    /// An earlier run: this run ran out of time before reaching the field.
    Previous,
}

/// One classified field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldClass {
    /// The family's name of the field (`public.customers.email`), recorded
    /// dotted.
    #[serde(serialize_with = "dotted")]
    pub field: FieldPath,
    /// Type its values are masked as.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Values sampled (0 for a pin).
    pub sampled: u64,
    /// Sampled values the type was found in.
    pub hits: u64,
    /// Why.
    pub by: ClassifiedBy,
}

/// The outcome of one connection's classification: counts and the
/// classified fields, never a sampled value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClassificationReport {
    /// Fields the connection has (listed from its schema).
    pub fields: u64,
    /// Fields whose values were sampled.
    pub sampled_fields: u64,
    /// Values sampled, over every field.
    pub sampled_values: u64,
    /// Fields left alone by `exempt`.
    pub exempt_fields: u64,
    /// Fields not sampled because of their type (dates, booleans, short
    /// numbers...).
    pub skipped_fields: u64,
    /// Fields whose sample failed (they keep their earlier classification).
    pub failed_fields: u64,
    /// False when the time budget ran out before every field was sampled
    /// (fields not reached keep their earlier classification).
    pub complete: bool,
    /// Classified fields.
    pub classified: Vec<FieldClass>,
}

impl Classifier {
    /// Compile the section; `masker` supplies the detectors.
    pub fn new(
        config: &ClassificationConfig,
        masker: Arc<Masker>,
    ) -> Result<Self, MaskConfigError> {
        let (exempt, pins) = compile(config)?;
        Ok(Classifier {
            masker,
            enabled: config.enabled,
            sample_rows: config.sample_rows,
            threshold: config.threshold,
            min_hits: config.min_hits,
            interval: config.interval.0,
            timeout: config.timeout.0,
            exempt,
            pins,
        })
    }

    /// Sample at all (pins apply either way).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Some field is pinned (pins apply even when sampling is off).
    pub fn has_pins(&self) -> bool {
        !self.pins.is_empty()
    }

    /// Non-null values to read per field.
    pub fn sample_rows(&self) -> u64 {
        self.sample_rows
    }

    /// Time budget of one connection's run.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How often runs repeat.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The share of sampled values a type must be found in.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The number of sampled values a type must be found in, at least.
    pub fn min_hits(&self) -> u64 {
        self.min_hits
    }

    /// `field` of `connection` is never sampled nor classified.
    pub fn is_exempt(&self, connection: &str, field: &FieldPath) -> bool {
        self.exempt.iter().any(|s| s.matches(connection, field))
    }

    /// The type `field` of `connection` is pinned to (the first pin that
    /// matches), if any.
    pub fn pinned(&self, connection: &str, field: &FieldPath) -> Option<&str> {
        self.pins
            .iter()
            .find(|(s, _)| s.matches(connection, field))
            .map(|(_, t)| t.as_str())
    }

    /// Run the detectors on one sampled value and count it in `tally`
    /// (each type at most once per value). Strings are read as they are,
    /// numbers as their digits, other JSON as its text; nulls are not
    /// counted.
    pub fn count(&self, tally: &mut Tally, value: &Value) {
        let text = match value {
            Value::Null => return,
            Value::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
            other => std::borrow::Cow::Owned(other.to_string()),
        };
        let mut end = text.len().min(MAX_VALUE_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        tally.sampled += 1;
        let found: BTreeSet<String> = self
            .masker
            .detect(&text[..end])
            .into_iter()
            .map(|f| f.type_name)
            .collect();
        for t in found {
            *tally.hits.entry(t).or_default() += 1;
        }
    }

    /// The type a field with this tally is classified as: found in at least
    /// `threshold` of the sampled values and in at least `min_hits` of them;
    /// among several, the one found most often (then the first by name).
    pub fn judge(&self, tally: &Tally) -> Option<(String, u64)> {
        if tally.sampled == 0 {
            return None;
        }
        let mut best: Option<(&String, u64)> = None;
        for (t, &hits) in &tally.hits {
            let share = hits as f64 / tally.sampled as f64;
            if hits >= self.min_hits
                && share >= self.threshold
                && best.is_none_or(|(_, b)| hits > b)
            {
                best = Some((t, hits));
            }
        }
        best.map(|(t, h)| (t.clone(), h))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn classifier(extra: Value) -> Classifier {
        let config: ClassificationConfig = serde_json::from_value(extra).unwrap();
        Classifier::new(&config, Arc::new(Masker::default())).unwrap()
    }

    fn tally(c: &Classifier, values: &[Value]) -> Tally {
        let mut t = Tally::default();
        for v in values {
            c.count(&mut t, v);
        }
        t
    }

    fn emails(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| json!(format!("user{i}@example.com")))
            .collect()
    }

    #[test]
    fn a_field_is_classified_at_the_threshold_and_not_below() {
        let c = classifier(json!({"threshold": 0.5}));
        // 5 emails of 10 values: exactly the threshold.
        let mut v = emails(5);
        v.extend((0..5).map(|i| json!(format!("plain text {i}"))));
        let t = tally(&c, &v);
        assert_eq!(t.sampled, 10);
        assert_eq!(t.hits.get("EMAIL"), Some(&5));
        assert_eq!(c.judge(&t), Some(("EMAIL".to_string(), 5)));
        // 4 of 10: below.
        v[0] = json!("nothing here");
        assert_eq!(c.judge(&tally(&c, &v)), None);
    }

    #[test]
    fn min_hits_and_nulls() {
        let c = classifier(json!({"min_hits": 3}));
        assert_eq!(c.judge(&tally(&c, &emails(2))), None, "2 hits < 3");
        assert!(c.judge(&tally(&c, &emails(3))).is_some());
        // Nulls are not sampled values: 3 emails and 10 nulls is 3 of 3.
        let mut v = emails(3);
        v.extend(std::iter::repeat_n(Value::Null, 10));
        let t = tally(&c, &v);
        assert_eq!(t.sampled, 3);
        assert!(c.judge(&t).is_some());
        assert_eq!(c.judge(&Tally::default()), None, "nothing sampled");
    }

    #[test]
    fn numbers_are_read_as_digits_and_the_most_found_type_wins() {
        let c = classifier(json!({}));
        let cards = [json!(4111111111111111u64), json!(5555555555554444u64)];
        assert_eq!(
            c.judge(&tally(&c, &cards)),
            Some(("CREDIT_CARD".to_string(), 2))
        );
        let ids: Vec<Value> = (1..50).map(|i| json!(i)).collect();
        assert_eq!(c.judge(&tally(&c, &ids)), None);
        // 3 values with an email, 2 of them with a card too.
        let mixed = [
            json!("a@example.com 4111 1111 1111 1111"),
            json!("b@example.com 4111 1111 1111 1111"),
            json!("c@example.com"),
        ];
        assert_eq!(c.judge(&tally(&c, &mixed)), Some(("EMAIL".to_string(), 3)));
    }

    #[test]
    fn exempt_and_pin_match_connection_and_field_case_insensitively() {
        let c = classifier(json!({
            "exempt": ["shop.public.customers.notes", {"connection": "*", "column": "*.*.memo"}],
            "pin": [{"connection": "shop", "column": "public.customers.tax_id", "type": "TAX_ID"}]
        }));
        let f = |s: &str| FieldPath::new(s.split('.'));
        assert!(c.is_exempt("shop", &f("public.Customers.NOTES")));
        assert!(!c.is_exempt("other", &f("public.customers.notes")));
        assert!(c.is_exempt("other", &f("main.t.memo")));
        assert!(!c.is_exempt("shop", &f("public.customers.email")));
        assert_eq!(
            c.pinned("shop", &f("public.customers.tax_id")),
            Some("TAX_ID")
        );
        assert_eq!(c.pinned("shop2", &f("public.customers.tax_id")), None);
    }

    #[test]
    fn bad_sections_are_refused_with_the_key() {
        let bad = |v: Value| -> String {
            match serde_json::from_value::<ClassificationConfig>(v) {
                Err(e) => e.to_string(),
                Ok(c) => validate(&c).unwrap_err().to_string(),
            }
        };
        assert!(bad(json!({"threshold": 0.0})).contains("threshold"));
        assert!(bad(json!({"threshold": 1.5})).contains("threshold"));
        assert!(bad(json!({"sample_rows": 0})).contains("sample_rows"));
        assert!(bad(json!({"min_hits": 0})).contains("min_hits"));
        assert!(bad(json!({"interval": "soon"})).contains("duration"));
        assert!(bad(json!({"exempt": ["nodot"]})).contains("exempt[0]"));
        assert!(bad(json!({"pin": [{"column": "a.b.c", "type": "email"}]})).contains("pin[0]"));
        assert!(bad(json!({"sample_row": 5})).contains("unknown field"));
        assert!(
            bad(json!({"pin": [{"column": "a.b.c", "type": "EMAIL", "typo": 1}]}))
                .contains("unknown field")
        );
    }
}
