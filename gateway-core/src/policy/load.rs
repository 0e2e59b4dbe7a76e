//! Loading policies: read `*.cedar` files, give every policy an id a human
//! can find (`@id("...")` when present, else `<file>:<line>`), validate
//! strictly against the schema, and report problems as `file:line:col: message`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use cedar_policy::{PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic as _;

use super::PolicyError;
use crate::text::line_col;

/// One policy file: display name and text.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// File name as shown in ids and diagnostics (e.g. `readonly.cedar`).
    pub name: String,
    /// Full path, for diagnostics.
    pub path: String,
    /// Text.
    pub text: String,
}

/// A problem in a policy file, printable as `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// File path.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.line, self.col, self.message
        )
    }
}

/// Read every `*.cedar` file of `dir`, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<PolicySource>, PolicyError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        PolicyError::Invalid(vec![Diagnostic {
            path: dir.display().to_string(),
            line: 1,
            col: 1,
            message: format!("cannot read policy dir: {e}"),
        }])
    })?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
        .collect();
    paths.sort();
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let text = std::fs::read_to_string(&p).map_err(|e| {
            PolicyError::Invalid(vec![Diagnostic {
                path: p.display().to_string(),
                line: 1,
                col: 1,
                message: format!("cannot read: {e}"),
            }])
        })?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(PolicySource {
            name,
            path: p.display().to_string(),
            text,
        });
    }
    Ok(out)
}

/// Build from in-memory sources (tests, the demo's embedded policies).
pub fn load_sources(sources: Vec<(String, String)>) -> Vec<PolicySource> {
    sources
        .into_iter()
        .map(|(name, text)| PolicySource {
            path: name.clone(),
            name,
            text,
        })
        .collect()
}

pub(super) struct Loaded {
    pub set: PolicySet,
    pub approvals: HashMap<String, (String, u32)>,
    /// `@max_affected_rows("<n>")` per permit id.
    pub row_limits: HashMap<String, u64>,
    pub count: usize,
}

/// Byte offsets where each top-level policy of a file starts (its first
/// annotation or its `permit`/`forbid`), skipping comments and strings.
fn policy_starts(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let (mut i, mut starts, mut expecting) = (0, vec![], true);
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            c if c.is_ascii_whitespace() => {}
            c => {
                if expecting {
                    starts.push(i);
                    expecting = false;
                }
                if c == b'"' {
                    i += 1;
                    while i < b.len() && b[i] != b'"' {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                } else if c == b';' {
                    expecting = true;
                }
            }
        }
        i += 1;
    }
    starts
}

fn diag_from(
    src: &PolicySource,
    err: &dyn miette::Diagnostic,
    fallback_offset: usize,
) -> Diagnostic {
    let offset = err
        .labels()
        .and_then(|mut l| l.next())
        .map(|l| l.offset())
        .unwrap_or(fallback_offset);
    let (line, col) = line_col(&src.text, offset);
    let mut message = err.to_string();
    if let Some(help) = err.help() {
        message.push_str(&format!(" (help: {help})"));
    }
    Diagnostic {
        path: src.path.clone(),
        line,
        col,
        message,
    }
}

/// The value of `@max_affected_rows`: a whole number >= 1, on a permit.
fn max_affected_rows(raw: &str, effect: cedar_policy::Effect) -> Result<u64, String> {
    if effect != cedar_policy::Effect::Permit {
        return Err(
            "@max_affected_rows only makes sense on a permit (a forbid allows nothing to limit)"
                .into(),
        );
    }
    let digits = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit());
    match raw.parse::<u64>() {
        Ok(n) if n >= 1 && digits => Ok(n),
        _ => Err(format!(
            "@max_affected_rows must be a whole number >= 1, like @max_affected_rows(\"100\"); got {raw:?}"
        )),
    }
}

pub(super) fn build(schema: &Schema, sources: &[PolicySource]) -> Result<Loaded, PolicyError> {
    let mut diags = vec![];
    let mut set = PolicySet::new();
    let mut approvals = HashMap::new();
    let mut row_limits = HashMap::new();
    // Where each policy id came from, to place validation errors.
    let mut origin: HashMap<String, (usize, usize)> = HashMap::new();
    for (file_index, src) in sources.iter().enumerate() {
        if let Some(deep) = super::shape::too_deep(&src.text) {
            let (line, col) = line_col(&src.text, deep.offset);
            diags.push(Diagnostic {
                path: src.path.clone(),
                line,
                col,
                message: format!(
                    "policy nested too deep: more than {} brackets, operators and `.` in one \
                     policy (Cedar's parser would overflow its stack); split the condition \
                     into several policies",
                    super::shape::MAX_STRUCTURE
                ),
            });
            continue;
        }
        let parsed = match src.text.parse::<PolicySet>() {
            Ok(p) => p,
            Err(errs) => {
                for e in errs.iter() {
                    diags.push(diag_from(src, e, 0));
                }
                continue;
            }
        };
        let starts = policy_starts(&src.text);
        let count = parsed.policies().count();
        // The parser names a file's policies policy0, policy1, ... in source order.
        let in_order =
            (0..count).filter_map(|i| parsed.policy(&PolicyId::new(format!("policy{i}"))));
        for (index, policy) in in_order.enumerate() {
            let start = starts.get(index).copied().unwrap_or(0);
            let (line, _) = line_col(&src.text, start);
            // A diagnostic placed at this policy's first line.
            let at_policy = |message: String| {
                let (line, col) = line_col(&src.text, start);
                Diagnostic {
                    path: src.path.clone(),
                    line,
                    col,
                    message,
                }
            };
            let id = policy
                .annotation("id")
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}:{line}", src.name));
            if let Some(group) = policy.annotation("approval") {
                let count = match policy.annotation("approvals").map(|n| n.parse::<u32>()) {
                    None => 1,
                    Some(Ok(n)) if n >= 1 => n,
                    Some(_) => {
                        diags.push(at_policy("@approvals must be a whole number >= 1".into()));
                        continue;
                    }
                };
                if policy.effect() != cedar_policy::Effect::Permit {
                    diags.push(at_policy("@approval only makes sense on a permit".into()));
                    continue;
                }
                approvals.insert(id.clone(), (group.to_string(), count));
            } else if policy.annotation("approvals").is_some() {
                diags.push(at_policy(
                    "@approvals needs @approval(\"<group>\") on the same policy".into(),
                ));
                continue;
            }
            if let Some(raw) = policy.annotation("max_affected_rows") {
                match max_affected_rows(raw, policy.effect()) {
                    Ok(n) => {
                        row_limits.insert(id.clone(), n);
                    }
                    Err(message) => {
                        diags.push(at_policy(message));
                        continue;
                    }
                }
            }
            origin.insert(id.clone(), (file_index, start));
            if let Err(e) = set.add(policy.new_id(PolicyId::new(&id))) {
                diags.push(at_policy(format!(
                    "{e} (ids come from @id or file:line; make them unique)"
                )));
            }
        }
    }
    let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
    for e in result.validation_errors() {
        let (file_index, start) = origin
            .get(&e.policy_id().to_string())
            .copied()
            .unwrap_or((0, 0));
        if let Some(src) = sources.get(file_index) {
            // Policies keep the source locations of the file they were parsed from.
            let offset = e
                .labels()
                .and_then(|mut l| l.next())
                .map(|l| l.offset())
                .unwrap_or(start);
            let (line, col) = line_col(&src.text, offset);
            diags.push(Diagnostic {
                path: src.path.clone(),
                line,
                col,
                message: format!("{e} [policy {}]", e.policy_id()),
            });
        }
    }
    if !diags.is_empty() {
        return Err(PolicyError::Invalid(diags));
    }
    let count = set.policies().count();
    Ok(Loaded {
        set,
        approvals,
        row_limits,
        count,
    })
}
