//! The `[masking]` config section, as written by operators.
//!
//! Plain data with `deny_unknown_fields` everywhere: a typo is an error, never
//! a silently ignored rule. Validation that needs more than serde (regexes,
//! globs, type names, the hash key) happens in [`super::Masker::new`]. The
//! format is documented with a full example in `mask/README.md`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::duration::HumanDuration;

/// The `[masking]` section. `MaskConfig::default()` (no section at all) masks
/// every built-in type with `redact`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// Master switch. `false` turns every detector and column rule off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Strategy for types that do not name one. Default `redact`.
    #[serde(default)]
    pub default_strategy: Strategy,
    /// Characters kept by `partial` when a type does not say. Default 4.
    #[serde(default = "four")]
    pub keep: usize,
    /// Key for the `hash` strategy: a secret reference (`${env:NAME}` or
    /// `${file:PATH}`). Required when any type or rule uses `hash`.
    #[serde(default)]
    pub hash_key: Option<String>,
    /// Per-type settings, keyed by type name (`EMAIL`, `CREDIT_CARD`, a
    /// custom detector's name...). Types not listed are on with the defaults.
    #[serde(default)]
    pub types: BTreeMap<String, TypeConfig>,
    /// Column rules: the SQL family's spelling of field rules
    /// (`schema.table.column`).
    #[serde(default)]
    pub columns: Vec<ColumnRule>,
    /// Field rules: mask whole values by the field they are, in any
    /// family's field names (`Secret.data.*`, `stdout`...).
    #[serde(default)]
    pub fields: Vec<FieldRule>,
    /// Detectors defined by the deployment.
    #[serde(default)]
    pub custom: Vec<CustomDetector>,
    /// `[masking.classification]`: which fields hold sensitive values,
    /// found by sampling them (see [`crate::classify`]).
    #[serde(default)]
    pub classification: ClassificationConfig,
}

fn yes() -> bool {
    true
}

fn four() -> usize {
    4
}

impl Default for MaskConfig {
    fn default() -> Self {
        MaskConfig {
            enabled: true,
            default_strategy: Strategy::Redact,
            keep: 4,
            hash_key: None,
            types: BTreeMap::new(),
            columns: Vec::new(),
            fields: Vec::new(),
            custom: Vec::new(),
            classification: ClassificationConfig::default(),
        }
    }
}

/// How a detected value is replaced.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// `[EMAIL]`.
    #[default]
    Redact,
    /// `****` followed by the last `keep` characters (`****1111`); values no
    /// longer than `keep` become `****`.
    Partial,
    /// `EMAIL_3f9a1c2b`: the first 8 hex digits of HMAC-SHA256(hash_key,
    /// value). Equal values give equal tokens, so joins and counts still work.
    Hash,
    /// JSON `null` when the value is a whole JSON string or number; removed
    /// (empty) inside longer text.
    Null,
}

/// Settings of one type under `[masking.types.NAME]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TypeConfig {
    /// Detect this type at all. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Replacement strategy; default: the section's `default_strategy`.
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// Characters kept by `partial`; default: the section's `keep`.
    #[serde(default)]
    pub keep: Option<usize>,
}

/// `[[masking.columns]]`: mask every value of matching columns, whatever it
/// looks like.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ColumnRule {
    /// Glob on the connection name; default `*` (every connection).
    #[serde(default = "star")]
    pub connection: String,
    /// Glob on `schema.table.column`, e.g. `*.*.ssn`, `public.customers.email`.
    /// Matched case-insensitively.
    pub column: String,
    /// Type name reported in counts (and used for the strategy when the rule
    /// gives none). Default `COLUMN`.
    #[serde(default = "column_type", rename = "type")]
    pub type_name: String,
    /// Strategy for this rule; default: the type's strategy.
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// Characters kept by `partial`; default: the type's `keep`.
    #[serde(default)]
    pub keep: Option<usize>,
}

/// `[[masking.fields]]`: mask every value of matching fields, whatever it
/// looks like. Fields are named by each family (see `mask/README.md`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// Dotted pattern on the family's field path: `*` is any one segment, a
    /// segment may be a glob (`cust*`), `"..."` quotes a segment holding
    /// dots. Matched case-insensitively. E.g. `Secret.data.*`,
    /// `*.metadata.annotations.*`, `stdout`, `public.customers.email`.
    pub field: String,
    /// Globs on the connection kind (`postgres`, `kubernetes`, `ssh`...);
    /// default: every kind.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Globs on the connection name; default: every connection.
    #[serde(default)]
    pub connections: Vec<String>,
    /// Type name reported in counts (and used for the strategy when the rule
    /// gives none). Default `FIELD`.
    #[serde(default = "field_type", rename = "type")]
    pub type_name: String,
    /// Strategy for this rule; default: the type's strategy.
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// Characters kept by `partial`; default: the type's `keep`.
    #[serde(default)]
    pub keep: Option<usize>,
}

fn field_type() -> String {
    "FIELD".to_string()
}

fn star() -> String {
    "*".to_string()
}

fn column_type() -> String {
    "COLUMN".to_string()
}

/// `[[masking.custom]]`: a deployment-specific detector. Exactly one of
/// `regex` and `words`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    /// Type name, upper case (`EMPLOYEE_ID`).
    pub name: String,
    /// Regex (Rust `regex` syntax). The whole match is masked.
    #[serde(default)]
    pub regex: Option<String>,
    /// Optional check a regex match must pass.
    #[serde(default)]
    pub validator: Option<Validator>,
    /// Whole words to mask, matched case-insensitively.
    #[serde(default)]
    pub words: Vec<String>,
    /// Strategy; default: the section's `default_strategy` (or `types.NAME`).
    #[serde(default)]
    pub strategy: Option<Strategy>,
    /// Characters kept by `partial`.
    #[serde(default)]
    pub keep: Option<usize>,
}

/// Checks a custom regex match must pass.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Validator {
    /// Luhn over the digits of the match.
    Luhn,
    /// ISO 7064 mod-97 (IBAN rule: first four characters moved to the end).
    Mod97,
}

/// `[masking.classification]`: each connection samples a bounded number of
/// values per field and marks the fields whose values the detectors flag as
/// sensitive with that type; those are masked whole like a field rule, in
/// every expression computed from them. See [`crate::classify`].
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassificationConfig {
    /// Classify at all. Default true (pins still apply when false).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Non-null values sampled per field. Default 100, at most 10000.
    #[serde(default = "hundred")]
    pub sample_rows: u64,
    /// Share (0 < t <= 1) of sampled values a type must be found in for the
    /// field to be classified as that type. Default 0.5.
    #[serde(default = "half")]
    pub threshold: f64,
    /// Sampled values a type must be found in, at least. Default 1.
    #[serde(default = "one")]
    pub min_hits: u64,
    /// Classify again this often (the duration grammar). Default `1h`.
    #[serde(default = "hour")]
    pub interval: HumanDuration,
    /// Time budget of one connection's run. Default `60s`.
    #[serde(default = "minute")]
    pub timeout: HumanDuration,
    /// Fields never sampled nor classified: `"conn.schema.table.column"`
    /// globs, or `{connection, column}` tables.
    #[serde(default)]
    pub exempt: Vec<FieldSelector>,
    /// Fields always classified as a type, whatever they hold.
    #[serde(default)]
    pub pin: Vec<PinnedField>,
}

impl Default for ClassificationConfig {
    fn default() -> Self {
        ClassificationConfig {
            enabled: true,
            sample_rows: hundred(),
            threshold: half(),
            min_hits: one(),
            interval: hour(),
            timeout: minute(),
            exempt: Vec::new(),
            pin: Vec::new(),
        }
    }
}

fn hundred() -> u64 {
    100
}

fn half() -> f64 {
    0.5
}

fn one() -> u64 {
    1
}

fn hour() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(3600))
}

fn minute() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}

/// Fields chosen by connection and field name: `"conn.schema.table.column"`
/// (globs; the connection is up to the first dot) or a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldSelector {
    /// `"shop.public.customers.email"`, `"*.*.*.notes"`.
    Dotted(String),
    /// `{connection = "shop", column = "public.customers.email"}`.
    Table(SelectorTable),
}

impl<'de> Deserialize<'de> for FieldSelector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // By hand rather than untagged: a typo in the table form is reported
        // as the unknown key it is.
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(FieldSelector::Dotted(s)),
            v @ serde_json::Value::Object(_) => serde_json::from_value(v)
                .map(FieldSelector::Table)
                .map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom(
                "must be \"connection.field\" or {connection, column}",
            )),
        }
    }
}

/// The table form of a [`FieldSelector`].
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SelectorTable {
    /// Glob on the connection name; default `*`.
    #[serde(default = "star")]
    pub connection: String,
    /// Glob on the field (`schema.table.column` for SQL), case-insensitive.
    pub column: String,
}

/// `pin = [{connection, column, type}]`: fields classified as `type`
/// without sampling.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PinnedField {
    /// Glob on the connection name; default `*`.
    #[serde(default = "star")]
    pub connection: String,
    /// Glob on the field (`schema.table.column` for SQL), case-insensitive.
    pub column: String,
    /// Type name the field's values are masked as (`EMAIL`, `US_SSN`, a
    /// custom type...).
    #[serde(rename = "type")]
    pub type_name: String,
}
