//! Field rules and the JSON walk.
//!
//! A field rule masks a whole value because of what field it is
//! (`public.customers.email`, `Secret.data.*`, `stdout`), whatever it looks
//! like. Each family names its fields as dotted paths of its own
//! ([`FieldPath`]); connectors say which part of a result is which field
//! with [`FieldOrigin`] pointer patterns (`/rows/*/3`, `/items/0`), and the
//! path extends below a pointer by the keys on the way down. A rule is a
//! dotted pattern matched segment by segment (`*` is any one segment, a
//! segment may be a glob, `"a.b"` quotes a segment holding dots). The walk
//! keeps, per node, the patterns still matching its path, so a result with
//! no rules costs nothing extra. Fields named like credentials (`password`,
//! `api_key`) are masked as `SECRET`, and fields named `ssn` (or
//! `social_security_number`) as `US_SSN`, without a rule while the type is
//! on. Everything else is scanned by the detectors: strings, numbers, and
//! object keys (a key that is itself an email is masked too).

use std::borrow::Cow;

use globset::{GlobBuilder, GlobMatcher};
use serde::Serialize;
use serde_json::{Map, Value};

use super::config::Strategy;
use super::strategy::{Replacement, TypeRule};
use super::{MaskCounts, Masker, bump, is_secret_key};
use crate::connector::{ConnectionInfo, FieldOrigin, FieldPath};

/// Which connection a value comes from, for the scope of field rules
/// (`connections`, `kinds`). A bare name (`"shop"`) has no kind: rules
/// scoped to kinds do not apply to it.
#[derive(Debug, Clone, Copy, Default)]
pub struct FieldScope<'a> {
    /// Connection name.
    pub connection: &'a str,
    /// Connection kind (`postgres`, `kubernetes`...), `""` when unknown.
    pub kind: &'a str,
}

impl<'a> From<&'a str> for FieldScope<'a> {
    fn from(connection: &'a str) -> Self {
        FieldScope {
            connection,
            kind: "",
        }
    }
}

impl<'a> From<&'a ConnectionInfo> for FieldScope<'a> {
    fn from(info: &'a ConnectionInfo) -> Self {
        FieldScope {
            connection: &info.name,
            kind: &info.kind,
        }
    }
}

/// One segment of a rule's field pattern.
#[derive(Debug)]
pub(crate) enum SegPat {
    /// `*`: any one segment.
    Any,
    /// A plain or quoted name, lower-cased (matched case-insensitively).
    Literal(String),
    /// A segment with glob characters (`cust*`, `{a,b}`).
    Glob(GlobMatcher),
}

impl SegPat {
    fn matches(&self, segment: &str) -> bool {
        match self {
            SegPat::Any => true,
            SegPat::Literal(l) => l == &segment.to_lowercase(),
            SegPat::Glob(g) => g.is_match(segment),
        }
    }
}

/// A `[[masking.fields]]` (or `[[masking.columns]]`) rule, compiled.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    /// Globs on the connection name; empty: every connection.
    connections: Vec<GlobMatcher>,
    /// Globs on the connection kind; empty: every kind.
    kinds: Vec<GlobMatcher>,
    pattern: Vec<SegPat>,
    /// Type name, strategy and keep.
    pub rule: TypeRule,
}

fn glob(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .case_insensitive(true)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("bad glob `{pattern}`: {e}"))
}

/// Split a field pattern into segments: `.` separates, `"..."` quotes a
/// segment (which may then hold dots; `""` inside is one quote).
pub(crate) fn parse_field_pattern(pattern: &str) -> Result<Vec<SegPat>, String> {
    // (segment text, was quoted)
    let mut raw: Vec<(String, bool)> = Vec::new();
    let mut current = (String::new(), false);
    let mut chars = pattern.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.0.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if current.0.is_empty() => {
                quoted = true;
                current.1 = true;
            }
            '.' if !quoted => raw.push(std::mem::take(&mut current)),
            c => current.0.push(c),
        }
    }
    if quoted {
        return Err(format!("field `{pattern}`: unclosed quote"));
    }
    raw.push(current);
    raw.into_iter()
        .map(|(seg, was_quoted)| {
            if seg.is_empty() && !was_quoted {
                Err(format!(
                    "field `{pattern}`: empty segment (segments are separated by single dots)"
                ))
            } else if was_quoted {
                Ok(SegPat::Literal(seg.to_lowercase()))
            } else if seg == "*" {
                Ok(SegPat::Any)
            } else if seg.contains(['*', '?', '[', '{']) {
                glob(&seg).map(SegPat::Glob)
            } else {
                Ok(SegPat::Literal(seg.to_lowercase()))
            }
        })
        .collect()
}

impl CompiledRule {
    /// A rule from its scope globs, its field pattern and what it masks as.
    pub(crate) fn new(
        connections: &[String],
        kinds: &[String],
        field: &str,
        rule: TypeRule,
    ) -> Result<Self, String> {
        Ok(CompiledRule {
            connections: connections
                .iter()
                .map(|c| glob(c))
                .collect::<Result<_, _>>()?,
            kinds: kinds.iter().map(|k| glob(k)).collect::<Result<_, _>>()?,
            pattern: parse_field_pattern(field)?,
            rule,
        })
    }

    /// A `[[masking.columns]]` rule: the SQL family's spelling of a field
    /// rule, `schema.table.column` on connections matching `connection`.
    pub(crate) fn column(connection: &str, column: &str, rule: TypeRule) -> Result<Self, String> {
        let r = CompiledRule::new(&[connection.to_string()], &[], column, rule)?;
        if r.pattern.len() != 3 {
            return Err(format!(
                "column `{column}` must be schema.table.column (use * for any part)"
            ));
        }
        Ok(r)
    }

    fn applies_to(&self, scope: FieldScope<'_>) -> bool {
        (self.connections.is_empty()
            || self
                .connections
                .iter()
                .any(|g| g.is_match(scope.connection)))
            && (self.kinds.is_empty() || self.kinds.iter().any(|g| g.is_match(scope.kind)))
    }

    /// True when the rule's first segments match all of `field`.
    fn prefix_matches(&self, field: &FieldPath) -> bool {
        self.pattern.len() >= field.0.len()
            && self.pattern.iter().zip(&field.0).all(|(p, s)| p.matches(s))
    }
}

/// The field rules of one set of rows (a SQL result set), one entry per
/// position in a row.
#[derive(Debug, Clone, Default)]
pub struct RowPlan {
    cols: Vec<Option<TypeRule>>,
}

impl RowPlan {
    /// True when no position has a rule (cells are only scanned).
    pub fn is_empty(&self) -> bool {
        self.cols.iter().all(Option::is_none)
    }
}

/// How a field is masked whole.
#[derive(Debug, Clone)]
struct FieldMask<'m> {
    rule: Cow<'m, TypeRule>,
    /// True for a configured rule, a classification or a derived value
    /// (masks any value whole); false for a rule by the field's name
    /// (`password`, `ssn`), which masks scalars whole and walks objects and
    /// arrays (a Kubernetes `Secret` object is not one secret value; its
    /// fields are masked by their own names and rules).
    configured: bool,
    by: MaskedBy,
}

/// What made a field masked whole, as a result's `masked_fields` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskedBy {
    /// A configured field rule (`[[masking.columns]]`, `[[masking.fields]]`).
    Rule,
    /// The family classified the field as holding values of a type.
    Classification,
    /// The field's name (`password`, `api_key`: `SECRET`; `ssn`: `US_SSN`).
    Name,
}

/// One field of a result masked whole, and why: a result's `masked_fields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldMasking {
    /// JSON pointer pattern of the values (`/rows/*/1`).
    pub pointer: String,
    /// The field (`main.customers.email`), or the table for a value computed
    /// from some column of it that cannot be named (`main.customers`).
    pub field: String,
    /// The type the values are masked as.
    #[serde(rename = "type")]
    pub type_name: String,
    /// How they are replaced.
    pub strategy: Strategy,
    /// The values are computed from the field, not the field itself.
    pub derived: bool,
    /// What made the field masked.
    pub by: MaskedBy,
}

/// The rule that masks the whole value of `origin` on `scope`: the first
/// configured rule that names exactly its field (for a derived value, any
/// rule at or below its field), else the family's classification, else
/// `SECRET` for credential-like field names and `US_SSN` for SSN-named ones.
/// A derived value is masked whole whatever it is, and `partial` becomes
/// `redact` for it: the kept tail of a computed value could be anything.
fn rule_for<'m>(
    m: &'m Masker,
    scope: FieldScope<'_>,
    origin: &FieldOrigin,
) -> Option<FieldMask<'m>> {
    let field = &origin.field;
    let depth = field.0.len();
    let configured = m.fields.iter().find(|r| {
        (r.pattern.len() == depth || (origin.derived && r.pattern.len() > depth))
            && r.applies_to(scope)
            && r.prefix_matches(field)
    });
    let mut mask = if let Some(r) = configured {
        FieldMask {
            rule: Cow::Borrowed(&r.rule),
            configured: true,
            by: MaskedBy::Rule,
        }
    } else if let Some(type_name) = origin.sensitive.as_deref() {
        FieldMask {
            rule: m.type_rule(type_name),
            configured: true,
            by: MaskedBy::Classification,
        }
    } else {
        let name = field.0.last()?.to_ascii_lowercase();
        let rule = if is_secret_key(&name) {
            m.secret_rule()
        } else if matches!(
            name.as_str(),
            "ssn" | "us_ssn" | "social_security_number" | "socialsecuritynumber"
        ) {
            m.ssn_rule()
        } else {
            None
        }?;
        FieldMask {
            rule: Cow::Borrowed(rule),
            configured: false,
            by: MaskedBy::Name,
        }
    };
    if origin.derived {
        mask.configured = true;
        if mask.rule.strategy == Strategy::Partial {
            mask.rule.to_mut().strategy = Strategy::Redact;
        }
    }
    Some(mask)
}

/// Which fields of a result are masked whole, and by what (see [`FieldMasking`]).
pub(crate) fn field_masks(
    m: &Masker,
    scope: FieldScope<'_>,
    origins: &[FieldOrigin],
) -> Vec<FieldMasking> {
    let mut out: Vec<FieldMasking> = Vec::new();
    for o in origins {
        let Some(mask) = rule_for(m, scope, o) else {
            continue;
        };
        let field = o.field.to_string();
        if out
            .iter()
            .any(|f| f.pointer == o.pointer && f.field == field)
        {
            continue;
        }
        out.push(FieldMasking {
            pointer: o.pointer.clone(),
            field,
            type_name: mask.rule.name.clone(),
            strategy: mask.rule.strategy,
            derived: o.derived,
            by: mask.by,
        });
    }
    out
}

pub(crate) fn plan_rows(
    m: &Masker,
    scope: FieldScope<'_>,
    fields: &[Option<&FieldPath>],
) -> RowPlan {
    RowPlan {
        cols: fields
            .iter()
            .map(|f| {
                f.and_then(|f| rule_for(m, scope, &FieldOrigin::new("", f.clone())))
                    .map(|r| r.rule.into_owned())
            })
            .collect(),
    }
}

pub(crate) fn mask_row(m: &Masker, plan: &RowPlan, row: &mut [Value], counts: &mut MaskCounts) {
    let mut walk = Walk {
        m,
        pats: &[],
        counts,
    };
    for (i, cell) in row.iter_mut().enumerate() {
        match plan.cols.get(i).and_then(Option::as_ref) {
            Some(rule) => walk.whole(cell, rule),
            None => walk.node(cell, &[], 0),
        }
    }
}

#[derive(Debug)]
enum Seg<'m> {
    /// `*` in a connector's pointer.
    Any,
    /// A key or index in a connector's pointer.
    Key(String),
    /// A segment of a rule, below the pointer a field starts at.
    Rule(&'m SegPat),
}

impl Seg<'_> {
    fn matches_key(&self, k: &str) -> bool {
        match self {
            Seg::Any => true,
            Seg::Key(s) => s == k,
            Seg::Rule(p) => p.matches(k),
        }
    }
    fn matches_index(&self, i: usize) -> bool {
        match self {
            Seg::Any => true,
            Seg::Key(s) => s.parse::<usize>().is_ok_and(|n| n == i),
            Seg::Rule(p) => p.matches(&i.to_string()),
        }
    }
}

type Pattern<'m> = (Vec<Seg<'m>>, FieldMask<'m>);

fn parse_pointer<'m>(p: &str) -> Vec<Seg<'m>> {
    p.split('/')
        .skip(1)
        .map(|s| {
            if s == "*" {
                Seg::Any
            } else {
                Seg::Key(s.replace("~1", "/").replace("~0", "~"))
            }
        })
        .collect()
}

/// The patterns `origin` yields on `scope`: the whole field when a rule
/// names it, and one pattern per rule that names a field below it.
fn patterns_of<'m>(
    m: &'m Masker,
    scope: FieldScope<'_>,
    origin: &FieldOrigin,
    out: &mut Vec<Pattern<'m>>,
) {
    // Derived values are masked whole or not at all: no rule reaches below
    // them. Where several origins name one pointer, the first that masks it
    // wins (connectors list derived origins first).
    if let Some(mask) = rule_for(m, scope, origin) {
        out.push((parse_pointer(&origin.pointer), mask));
    }
    if origin.derived {
        return;
    }
    let depth = origin.field.0.len();
    for r in m.fields.iter().filter(|r| {
        r.pattern.len() > depth && r.applies_to(scope) && r.prefix_matches(&origin.field)
    }) {
        let mut segs = parse_pointer(&origin.pointer);
        segs.extend(r.pattern[depth..].iter().map(Seg::Rule));
        let mask = FieldMask {
            rule: Cow::Borrowed(&r.rule),
            configured: true,
            by: MaskedBy::Rule,
        };
        out.push((segs, mask));
    }
}

pub(crate) fn walk_value(
    m: &Masker,
    scope: FieldScope<'_>,
    value: &mut Value,
    origins: &[FieldOrigin],
    counts: &mut MaskCounts,
) {
    let mut pats: Vec<Pattern<'_>> = Vec::new();
    for o in origins {
        patterns_of(m, scope, o, &mut pats);
    }
    let live: Vec<usize> = (0..pats.len()).collect();
    Walk {
        m,
        pats: &pats,
        counts,
    }
    .node(value, &live, 0);
}

struct Walk<'a, 'm> {
    m: &'m Masker,
    pats: &'a [Pattern<'m>],
    counts: &'a mut MaskCounts,
}

impl Walk<'_, '_> {
    /// Mask a whole value as `rule` (field rules, credential keys).
    fn whole(&mut self, v: &mut Value, rule: &TypeRule) {
        let text = match &mut *v {
            Value::Null => return,
            Value::String(s) => std::mem::take(s),
            other => other.to_string(),
        };
        bump(self.counts, &rule.name);
        *v = match self.m.replace(rule, &text) {
            Replacement::Text(t) => Value::String(t),
            Replacement::Null => Value::Null,
        };
    }

    /// [`Self::node`] on a child, on more stack when little is left: a value
    /// nested deeper than the thread's stack allows (built in code; parsed
    /// JSON stops at 128 levels) is walked, not a crash.
    fn child(&mut self, v: &mut Value, live: &[usize], depth: usize) {
        stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.node(v, live, depth));
    }

    fn node(&mut self, v: &mut Value, live: &[usize], depth: usize) {
        let container = v.is_object() || v.is_array();
        if let Some(&p) = live.iter().find(|&&p| {
            let (segs, mask) = &self.pats[p];
            segs.len() == depth && (mask.configured || !container)
        }) {
            let pats = self.pats;
            self.whole(v, &pats[p].1.rule);
            return;
        }
        match v {
            Value::String(s) => {
                if let Some(r) = self.m.mask_str(s, self.counts) {
                    *v = match r {
                        Replacement::Text(t) => Value::String(t),
                        Replacement::Null => Value::Null,
                    };
                }
            }
            Value::Number(n) => {
                let t = n.to_string();
                if t.len() >= 8
                    && let Some(r) = self.m.mask_str(&t, self.counts)
                {
                    *v = match r {
                        Replacement::Text(t) => Value::String(t),
                        Replacement::Null => Value::Null,
                    };
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter_mut().enumerate() {
                    let child_live = self.advance(live, depth, |s| s.matches_index(i));
                    self.child(child, &child_live, depth + 1);
                }
            }
            Value::Object(map) => {
                let mut keys_need_masking = false;
                for (k, child) in map.iter_mut() {
                    let child_live = self.advance(live, depth, |s| s.matches_key(k));
                    let ruled = child_live
                        .iter()
                        .any(|&p| self.pats[p].0.len() == depth + 1);
                    match self.m.secret_rule() {
                        Some(rule) if !ruled && is_secret_key(k) && is_secret_scalar(child) => {
                            self.whole(child, rule)
                        }
                        _ => self.child(child, &child_live, depth + 1),
                    }
                    if !keys_need_masking && !self.m.detect_is_empty(k) {
                        keys_need_masking = true;
                    }
                }
                if keys_need_masking {
                    let old = std::mem::take(map);
                    let mut fresh = Map::with_capacity(old.len());
                    for (k, child) in old {
                        let mut key = match self.m.mask_str(&k, self.counts) {
                            Some(Replacement::Text(t)) => t,
                            Some(Replacement::Null) => String::new(),
                            None => k,
                        };
                        // Two keys masked alike must not overwrite each other.
                        let base = key.clone();
                        let mut n = 2;
                        while fresh.contains_key(&key) {
                            key = format!("{base}#{n}");
                            n += 1;
                        }
                        fresh.insert(key, child);
                    }
                    *map = fresh;
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn advance(&self, live: &[usize], depth: usize, f: impl Fn(&Seg<'_>) -> bool) -> Vec<usize> {
        if live.is_empty() {
            return Vec::new();
        }
        live.iter()
            .copied()
            .filter(|&p| self.pats[p].0.get(depth).is_some_and(&f))
            .collect()
    }
}

/// A credential-keyed value worth masking whole: a non-empty string or a
/// number (objects and arrays are walked instead).
fn is_secret_scalar(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.is_empty() && !s.starts_with("${"),
        Value::Number(_) => true,
        _ => false,
    }
}

impl Masker {
    /// True when `s` has no finding (used for object keys).
    fn detect_is_empty(&self, s: &str) -> bool {
        let mut spans = Vec::new();
        self.engine.find(s, &mut spans);
        spans.is_empty()
    }
}
