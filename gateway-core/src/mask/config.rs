//! The `[masking]` config section, as written by operators.
//!
//! Plain data with `deny_unknown_fields` everywhere: a typo is an error, never
//! a silently ignored rule. Validation that needs more than serde (regexes,
//! globs, type names, the hash key) happens in [`super::Masker::new`]. The
//! format is documented with a full example in `mask/README.md`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The `[masking]` section. `MaskConfig::default()` (no section at all) masks
/// every built-in type with `redact`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
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
