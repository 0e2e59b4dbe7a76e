//! Masking stage: sensitive data never leaves the gateway unless policy says
//! so.
//!
//! Works in-process on JSON values (SQL rows, JSON/JSONB cells, Kubernetes
//! objects, audit arguments) and on text (error messages, command output).
//! With no `[masking]` section every built-in type is masked with `redact`;
//! a deployment that wants less must say so (see `mask/README.md`).
//!
//! Brief overview:
//! - [`config`]: the `[masking]` section as plain data;
//! - `detect`: prefilter → one `RegexSet` pass → validators (in `validate`);
//! - [`strategy`]: redact, partial, hash (keyed HMAC), null;
//! - `fields`: field rules (`[[masking.fields]]`, and `[[masking.columns]]`,
//!   the SQL family's spelling) on family-named field paths, and the JSON walk;
//! - [`Masker`]: the compiled whole, shared by every call.
//!
//! What it does not do: decide whether a caller may see raw data. The
//! pipeline asks Cedar (`unmask`, with the found types from [`MaskCounts`])
//! and keeps its own unmasked clone if permitted.
//!
//! Invariant: every string that leaves through these functions has been
//! scanned by every enabled detector, and every field a rule names is masked
//! whole whatever it contains. Functions never panic, whatever the input.

pub mod config;
pub mod strategy;

mod detect;
mod fields;
mod validate;

use std::collections::BTreeMap;

use serde_json::Value;

pub use self::config::{
    ClassificationConfig, ColumnRule, CustomDetector, FieldRule, FieldSelector, MaskConfig,
    PinnedField, SelectorTable, Strategy, TypeConfig, Validator,
};
pub use self::detect::{BUILTIN_TYPES, is_secret_key};
use self::detect::{CustomSpec, Engine, SECRET, Span};
pub use self::fields::{FieldMasking, FieldScope, MaskedBy, RowPlan};
pub use self::strategy::{Replacement, TypeRule};
use crate::connector::{FieldOrigin, FieldPath};
use crate::review::TextPart;
use crate::secret::Secret;

/// Count of masked values per type, e.g. `{EMAIL: 3}`.
pub type MaskCounts = BTreeMap<String, u64>;

/// Error in the masking configuration. The message names the offending key
/// and never contains a secret value.
#[derive(Debug, thiserror::Error)]
#[error("masking config: {0}")]
pub struct MaskConfigError(pub String);

/// One detection in a text, for callers that need positions (tests, the
/// Presidio comparison, a UI highlighting what was hidden).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Type name, e.g. `EMAIL`.
    pub type_name: String,
    /// Start byte offset.
    pub start: usize,
    /// End byte offset (exclusive).
    pub end: usize,
}

/// Compiled masker, shared by all calls (it is `Send + Sync`).
#[derive(Debug)]
pub struct Masker {
    enabled: bool,
    engine: Engine,
    /// Type table: built-ins first (index = priority), then custom.
    types: Vec<TypeRule>,
    secret_on: bool,
    /// Index of US_SSN in `types` when that type is on (SSN columns by name).
    ssn: Option<usize>,
    hash_key: Option<Secret>,
    /// Field rules: `[[masking.columns]]` first, then `[[masking.fields]]`.
    fields: Vec<fields::CompiledRule>,
}

pub(crate) fn is_type_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

impl Default for Masker {
    fn default() -> Self {
        // The default config compiles: built-in patterns only, no secrets.
        match Masker::new(&MaskConfig::default()) {
            Ok(m) => m,
            Err(e) => unreachable!("built-in masking patterns must compile: {e}"),
        }
    }
}

impl Masker {
    /// Compile a masker from config: checks type names, regexes and globs,
    /// and resolves `hash_key` (required when any strategy is `hash`).
    pub fn new(config: &MaskConfig) -> Result<Self, MaskConfigError> {
        let err = |m: String| MaskConfigError(m);
        crate::classify::validate(&config.classification)?;
        let mut names: Vec<String> = BUILTIN_TYPES.iter().map(|s| s.to_string()).collect();
        for c in &config.custom {
            if !is_type_name(&c.name) {
                return Err(err(format!(
                    "custom detector name `{}` must be upper case letters, digits and _",
                    c.name
                )));
            }
            if names.contains(&c.name) {
                return Err(err(format!(
                    "custom detector `{}` is defined twice or shadows a built-in type",
                    c.name
                )));
            }
            if c.regex.is_none() && c.words.is_empty() {
                return Err(err(format!(
                    "custom detector `{}` needs `regex` or `words`",
                    c.name
                )));
            }
            if c.validator.is_some() && c.regex.is_none() {
                return Err(err(format!(
                    "custom detector `{}`: `validator` needs `regex`",
                    c.name
                )));
            }
            if c.words.iter().any(|w| w.trim().is_empty()) {
                return Err(err(format!(
                    "custom detector `{}`: empty word in `words`",
                    c.name
                )));
            }
            names.push(c.name.clone());
        }
        for name in config.types.keys() {
            if !names.contains(name) {
                return Err(err(format!(
                    "unknown type `{name}` in [masking.types]; known: {} (define others under [[masking.custom]])",
                    names.join(", ")
                )));
            }
        }
        let resolve = |name: &str, strategy: Option<Strategy>, keep: Option<usize>| {
            let t = config.types.get(name);
            TypeRule {
                name: name.to_string(),
                strategy: strategy
                    .or(t.and_then(|t| t.strategy))
                    .unwrap_or(config.default_strategy),
                keep: keep.or(t.and_then(|t| t.keep)).unwrap_or(config.keep),
            }
        };
        let on = |name: &str| config.enabled && config.types.get(name).is_none_or(|t| t.enabled);
        let mut types = Vec::with_capacity(names.len());
        let mut enabled = [false; 10];
        for (i, name) in BUILTIN_TYPES.iter().enumerate() {
            types.push(resolve(name, None, None));
            enabled[i] = on(name);
        }
        let mut custom_specs = Vec::new();
        for c in &config.custom {
            let ty = types.len();
            types.push(resolve(&c.name, c.strategy, c.keep));
            if on(&c.name) {
                custom_specs.push(CustomSpec {
                    ty,
                    regex: c.regex.as_deref(),
                    validator: c.validator,
                    words: &c.words,
                });
            }
        }
        let engine = Engine::new(&enabled, &custom_specs)
            .map_err(|e| err(format!("custom detector: {e}")))?;
        let mut field_rules = Vec::new();
        for (i, r) in config.columns.iter().enumerate() {
            if !is_type_name(&r.type_name) {
                return Err(err(format!(
                    "columns[{i}]: type `{}` must be upper case",
                    r.type_name
                )));
            }
            let rule = resolve(&r.type_name, r.strategy, r.keep);
            let compiled = fields::CompiledRule::column(&r.connection, &r.column, rule)
                .map_err(|e| err(format!("columns[{i}]: {e}")))?;
            field_rules.push(compiled);
        }
        for (i, r) in config.fields.iter().enumerate() {
            if !is_type_name(&r.type_name) {
                return Err(err(format!(
                    "fields[{i}]: type `{}` must be upper case",
                    r.type_name
                )));
            }
            let rule = resolve(&r.type_name, r.strategy, r.keep);
            let compiled = fields::CompiledRule::new(&r.connections, &r.kinds, &r.field, rule)
                .map_err(|e| err(format!("fields[{i}]: {e}")))?;
            field_rules.push(compiled);
        }
        let uses_hash =
            types.iter().enumerate().any(|(i, t)| {
                t.strategy == Strategy::Hash && (i >= BUILTIN_TYPES.len() || enabled[i])
            }) || field_rules
                .iter()
                .any(|r| r.rule.strategy == Strategy::Hash);
        let hash_key = match &config.hash_key {
            Some(raw) => {
                let key = crate::secret::resolve(raw).map_err(|e| err(format!("hash_key: {e}")))?;
                if key.expose().is_empty() {
                    return Err(err("hash_key resolves to an empty value".to_string()));
                }
                Some(key)
            }
            None if uses_hash && config.enabled => {
                return Err(err(
                    "the `hash` strategy needs `hash_key` (a secret reference such as \"${env:TOLLGATE_MASK_KEY}\")"
                        .to_string(),
                ));
            }
            None => None,
        };
        Ok(Masker {
            enabled: config.enabled,
            engine,
            secret_on: enabled[SECRET],
            ssn: BUILTIN_TYPES
                .iter()
                .position(|t| *t == "US_SSN")
                .filter(|i| enabled[*i]),
            types,
            hash_key,
            fields: if config.enabled {
                field_rules
            } else {
                Vec::new()
            },
        })
    }

    /// Mask a structured result in place; `origins` names which fields its
    /// parts are (for the field rules in force on `scope`: a connection name,
    /// or a [`crate::connector::ConnectionInfo`] for rules scoped to kinds).
    /// Strings are scanned, numbers too (a card stored as a bigint), object
    /// keys too; values under credential-like keys (`password`, `api_key`...)
    /// are masked whole as `SECRET`. Returns counts per type.
    pub fn mask_value<'s>(
        &self,
        scope: impl Into<FieldScope<'s>>,
        value: &mut Value,
        origins: &[FieldOrigin],
    ) -> MaskCounts {
        let mut counts = MaskCounts::new();
        if self.enabled {
            fields::walk_value(self, scope.into(), value, origins, &mut counts);
        }
        counts
    }

    /// Which fields of a result `origins` describes are masked whole on
    /// `scope`, as what and why (a result's `masked_fields`).
    pub fn field_masks<'s>(
        &self,
        scope: impl Into<FieldScope<'s>>,
        origins: &[FieldOrigin],
    ) -> Vec<FieldMasking> {
        if !self.enabled {
            return Vec::new();
        }
        fields::field_masks(self, scope.into(), origins)
    }

    /// Mask free text (error messages, command output).
    pub fn mask_text(&self, text: &str) -> (String, MaskCounts) {
        let mut counts = MaskCounts::new();
        match self.mask_str(text, &mut counts) {
            None => (text.to_string(), counts),
            Some(Replacement::Text(t)) => (t, counts),
            Some(Replacement::Null) => (String::new(), counts),
        }
    }

    /// Mask a review text part by part (see [`crate::review`]) and join it:
    /// each part is scanned on its own, so no finding crosses from a literal
    /// into the code around it. A literal is scanned with the end of the code
    /// before it as context (a credential key: `password = 'x'`), and only
    /// what falls inside the literal is replaced.
    pub fn mask_parts(&self, parts: &[TextPart]) -> (String, MaskCounts) {
        let (masked, counts) = self.mask_each_part(FieldScope::default(), parts);
        let joined = masked.iter().map(TextPart::text).collect();
        (joined, counts)
    }

    /// [`Masker::mask_parts`] without the join: each part masked as it
    /// describes, in order, so the masked text keeps its code/literal cut.
    /// A field part is masked whole when a field rule in force on `scope`
    /// (or a credential-like field name) names its field, else like a literal.
    pub fn mask_each_part<'s>(
        &self,
        scope: impl Into<FieldScope<'s>>,
        parts: &[TextPart],
    ) -> (Vec<TextPart>, MaskCounts) {
        let scope = scope.into();
        let mut counts = MaskCounts::new();
        let mut out = Vec::with_capacity(parts.len());
        let mut before = "";
        for part in parts {
            match part {
                TextPart::Code(s) => {
                    out.push(TextPart::Code(self.mask_text_into(s, &mut counts)));
                    before = s;
                }
                TextPart::Literal(s) => {
                    let context = tail(before, LITERAL_CONTEXT);
                    out.push(TextPart::Literal(self.mask_in_context(
                        context,
                        s,
                        &mut counts,
                    )));
                    before = "";
                }
                TextPart::Field { field, text } => {
                    let mut value = Value::String(text.clone());
                    let origin = FieldOrigin::new(String::new(), field.clone());
                    let found = self.mask_value(scope, &mut value, std::slice::from_ref(&origin));
                    merge_counts(&mut counts, &found);
                    let text = match value {
                        Value::String(t) => t,
                        _ => String::new(),
                    };
                    out.push(TextPart::Field {
                        field: field.clone(),
                        text,
                    });
                    before = "";
                }
            }
        }
        (out, counts)
    }

    fn mask_text_into(&self, s: &str, counts: &mut MaskCounts) -> String {
        match self.mask_str(s, counts) {
            None => s.to_string(),
            Some(Replacement::Text(t)) => t,
            Some(Replacement::Null) => String::new(),
        }
    }

    /// Mask `s`, scanning `context + s` but replacing only within `s`.
    fn mask_in_context(&self, context: &str, s: &str, counts: &mut MaskCounts) -> String {
        if context.is_empty() {
            return self.mask_text_into(s, counts);
        }
        if !self.enabled || self.engine.is_empty() || s.is_empty() {
            return s.to_string();
        }
        let joined = format!("{context}{s}");
        let mut spans: Vec<Span> = Vec::new();
        self.engine.find(&joined, &mut spans);
        let base = context.len();
        let mut out = String::with_capacity(s.len());
        let mut at = 0;
        for sp in spans.iter().filter(|sp| sp.end > base) {
            let (start, end) = (sp.start.max(base) - base, sp.end - base);
            if start < at {
                continue;
            }
            out.push_str(&s[at..start]);
            let rule = &self.types[sp.ty];
            bump(counts, &rule.name);
            if let Replacement::Text(t) = self.replace(rule, &s[start..end]) {
                out.push_str(&t);
            }
            at = end;
        }
        out.push_str(&s[at..]);
        out
    }

    /// Precompile the field rules of one set of rows: `fields[i]` is the
    /// field of position `i` (SQL: `schema.table.column`), when known. Use
    /// with [`Masker::mask_planned_row`] while rows stream.
    pub fn plan_rows<'s>(
        &self,
        scope: impl Into<FieldScope<'s>>,
        fields: &[Option<&FieldPath>],
    ) -> RowPlan {
        fields::plan_rows(self, scope.into(), fields)
    }

    /// Mask one row in place with a plan from [`Masker::plan_rows`], adding
    /// to `counts`. Holds nothing between rows.
    pub fn mask_planned_row(&self, plan: &RowPlan, row: &mut [Value], counts: &mut MaskCounts) {
        if self.enabled {
            fields::mask_row(self, plan, row, counts);
        }
    }

    /// One-off form of [`Masker::plan_rows`] + [`Masker::mask_planned_row`].
    pub fn mask_row<'s>(
        &self,
        scope: impl Into<FieldScope<'s>>,
        fields: &[Option<&FieldPath>],
        row: &mut [Value],
    ) -> MaskCounts {
        let mut counts = MaskCounts::new();
        let plan = self.plan_rows(scope, fields);
        self.mask_planned_row(&plan, row, &mut counts);
        counts
    }

    /// Masking is on (`[masking] enabled`, the default).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Where sensitive data is in `text`, without masking it.
    pub fn detect(&self, text: &str) -> Vec<Finding> {
        if !self.enabled {
            return Vec::new();
        }
        let mut spans = Vec::new();
        self.engine.find(text, &mut spans);
        spans
            .into_iter()
            .map(|s| Finding {
                type_name: self.types[s.ty].name.clone(),
                start: s.start,
                end: s.end,
            })
            .collect()
    }

    /// The replacement of `value` as type `rule` (what a field rule does).
    pub fn replace(&self, rule: &TypeRule, value: &str) -> Replacement {
        strategy::apply(rule, self.hash_key.as_ref(), value)
    }

    /// Mask one string; `None` when nothing was found (the common case,
    /// without allocating).
    fn mask_str(&self, s: &str, counts: &mut MaskCounts) -> Option<Replacement> {
        if !self.enabled || self.engine.is_empty() {
            return None;
        }
        let mut spans: Vec<Span> = Vec::new();
        self.engine.find(s, &mut spans);
        if spans.is_empty() {
            return None;
        }
        if let [only] = spans.as_slice()
            && only.start == 0
            && only.end == s.len()
        {
            let rule = &self.types[only.ty];
            bump(counts, &rule.name);
            return Some(self.replace(rule, s));
        }
        let mut out = String::with_capacity(s.len());
        let mut at = 0;
        for sp in &spans {
            out.push_str(&s[at..sp.start]);
            let rule = &self.types[sp.ty];
            bump(counts, &rule.name);
            if let Replacement::Text(t) = self.replace(rule, &s[sp.start..sp.end]) {
                out.push_str(&t);
            }
            at = sp.end;
        }
        out.push_str(&s[at..]);
        Some(Replacement::Text(out))
    }

    /// The settings of type `name` (a classification's type); a type no
    /// detector defines is redacted under its own name.
    fn type_rule(&self, name: &str) -> std::borrow::Cow<'_, TypeRule> {
        match self.types.iter().find(|t| t.name == name) {
            Some(t) => std::borrow::Cow::Borrowed(t),
            None => std::borrow::Cow::Owned(TypeRule {
                name: name.to_string(),
                strategy: Strategy::Redact,
                keep: 0,
            }),
        }
    }

    fn secret_rule(&self) -> Option<&TypeRule> {
        self.secret_on.then(|| &self.types[SECRET])
    }

    /// `US_SSN` for columns named like social security numbers: the value
    /// is masked whole even when it fails the SSN validator (test data such
    /// as 123-45-6789 is still somebody's field of that name).
    fn ssn_rule(&self) -> Option<&TypeRule> {
        self.ssn.map(|i| &self.types[i])
    }
}

/// Bytes of the code before a literal that detectors see as its context.
const LITERAL_CONTEXT: usize = 64;

/// The last `max` bytes of `s` or fewer, on a character boundary.
fn tail(s: &str, max: usize) -> &str {
    let mut from = s.len().saturating_sub(max);
    while !s.is_char_boundary(from) {
        from += 1;
    }
    &s[from..]
}

/// Add one to `counts[name]` without allocating when the key exists.
fn bump(counts: &mut MaskCounts, name: &str) {
    if let Some(c) = counts.get_mut(name) {
        *c += 1;
    } else {
        counts.insert(name.to_string(), 1);
    }
}

/// Add `other` into `into` (for callers that mask parts separately).
pub fn merge_counts(into: &mut MaskCounts, other: &MaskCounts) {
    for (k, v) in other {
        *into.entry(k.clone()).or_default() += v;
    }
}

#[cfg(test)]
mod tests;
