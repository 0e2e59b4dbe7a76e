//! Column rules and the JSON walk.
//!
//! A column rule masks a whole cell because of where it came from
//! (`public.customers.email`), whatever it looks like. Connectors describe
//! origins as [`FieldOrigin`] pointer patterns (`/rows/*/3`); the walk keeps,
//! per node, the patterns still matching its path, so a result with no rules
//! costs nothing extra. Columns named like credentials (`password`,
//! `api_key`) are masked as `SECRET`, and columns named `ssn` (or
//! `social_security_number`) as `US_SSN`, without a rule while the type is on.
//! Everything else is scanned by the detectors: strings, numbers, and object
//! keys (a key that is itself an email is masked too).

use globset::{GlobBuilder, GlobMatcher};
use serde_json::{Map, Value};

use super::strategy::{Replacement, TypeRule};
use super::{MaskCounts, Masker, bump, is_secret_key};
use crate::connector::FieldOrigin;

/// A `[[masking.columns]]` rule with its globs compiled.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    connection: GlobMatcher,
    column: GlobMatcher,
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

impl CompiledRule {
    pub(crate) fn new(connection: &str, column: &str, rule: TypeRule) -> Result<Self, String> {
        if column.split('.').count() != 3 {
            return Err(format!(
                "column `{column}` must be schema.table.column (use * for any part)"
            ));
        }
        Ok(CompiledRule {
            connection: glob(connection)?,
            column: glob(column)?,
            rule,
        })
    }
}

/// The column rules of one result set, one entry per column.
#[derive(Debug, Clone, Default)]
pub struct RowPlan {
    cols: Vec<Option<TypeRule>>,
}

impl RowPlan {
    /// True when no column has a rule (cells are only scanned).
    pub fn is_empty(&self) -> bool {
        self.cols.iter().all(Option::is_none)
    }
}

/// The rule for a cell from `origin` on `connection`: the first configured
/// rule that matches, else `SECRET` for credential-like column names.
fn rule_for<'m>(m: &'m Masker, connection: &str, origin: &str) -> Option<&'m TypeRule> {
    if let Some(r) = m
        .columns
        .iter()
        .find(|r| r.connection.is_match(connection) && r.column.is_match(origin))
    {
        return Some(&r.rule);
    }
    let column = origin
        .rsplit('.')
        .next()
        .unwrap_or(origin)
        .to_ascii_lowercase();
    if is_secret_key(&column) {
        m.secret_rule()
    } else if matches!(
        column.as_str(),
        "ssn" | "us_ssn" | "social_security_number" | "socialsecuritynumber"
    ) {
        m.ssn_rule()
    } else {
        None
    }
}

pub(crate) fn plan_rows(m: &Masker, connection: &str, origins: &[Option<&str>]) -> RowPlan {
    RowPlan {
        cols: origins
            .iter()
            .map(|o| o.and_then(|o| rule_for(m, connection, o)).cloned())
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
enum Seg {
    Any,
    Key(String),
}

impl Seg {
    fn matches_key(&self, k: &str) -> bool {
        match self {
            Seg::Any => true,
            Seg::Key(s) => s == k,
        }
    }
    fn matches_index(&self, i: usize) -> bool {
        match self {
            Seg::Any => true,
            Seg::Key(s) => s.parse::<usize>().is_ok_and(|n| n == i),
        }
    }
}

type Pattern<'m> = (Vec<Seg>, &'m TypeRule);

fn parse_pointer(p: &str) -> Vec<Seg> {
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

pub(crate) fn walk_value(
    m: &Masker,
    connection: &str,
    value: &mut Value,
    origins: &[FieldOrigin],
    counts: &mut MaskCounts,
) {
    let pats: Vec<Pattern<'_>> = origins
        .iter()
        .filter_map(|o| rule_for(m, connection, &o.origin).map(|r| (parse_pointer(&o.pointer), r)))
        .collect();
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
    /// Mask a whole value as `rule` (column rules, credential keys).
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

    fn node(&mut self, v: &mut Value, live: &[usize], depth: usize) {
        if let Some(&p) = live.iter().find(|&&p| self.pats[p].0.len() == depth) {
            let rule = self.pats[p].1;
            self.whole(v, rule);
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
                    self.node(child, &child_live, depth + 1);
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
                        _ => self.node(child, &child_live, depth + 1),
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

    fn advance(&self, live: &[usize], depth: usize, f: impl Fn(&Seg) -> bool) -> Vec<usize> {
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
