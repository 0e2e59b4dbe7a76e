//! `tollgate policy test`: run policy test cases (request → expected
//! decision). A case is either a whole tool call (analysed by the real
//! connector, so it tests what the SQL really does) or a raw Cedar request.
//!
//! Case files are `.json` (an array of cases) or `.jsonl` (one per line):
//! ```json
//! {"name": "analyst reads orders", "principal": {"sub": "ann", "groups": ["analysts"]},
//!  "tool": "sql_query", "arguments": {"connection": "shop", "sql": "SELECT * FROM orders"},
//!  "expect": "allow"}
//! {"name": "raw", "principal": {"sub": "ann", "groups": []}, "action": "sql:delete",
//!  "resource": {"kind": "Table", "id": "shop/public.orders", "connection": "shop"},
//!  "context": {"statement": "...", "has_where": false, "tables": [], "functions": [], "columns": []}, "expect": "deny"}
//! ```
//! A raw request's `resource` is `{kind, id, connection?}` (the connection it
//! is `in`) or `{kind, id, parent?: {kind, id, parent?}, attributes?: {..}}`
//! for resources deeper in a family's chain.
//! `expect` is `allow`, `deny` or `approval`. Optional `"max_affected_rows": N`
//! also expects the strictest `@max_affected_rows` of the permits that allowed
//! the call to be N (the connection's own `max_affected_rows` is not policy
//! and is not part of the case).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use gateway_core::Principal;
use gateway_core::access::{AccessRequest, ContextValue, Resource};
use gateway_core::connector::Connector;
use gateway_core::gateway::connect_request;
use gateway_core::policy::{PolicyEngine, Verdict};
use serde::Deserialize;
use serde_json::Value;

use super::load_config;
use crate::{app, connectors};

/// One test case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    name: String,
    principal: Principal,
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    resource: Option<Resource>,
    #[serde(default)]
    context: BTreeMap<String, ContextValue>,
    expect: String,
    /// Expected `@max_affected_rows` cap of the decision (None: not checked).
    #[serde(default)]
    max_affected_rows: Option<u64>,
}

fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = vec![];
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", shown(p)))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json" || x == "jsonl"))
                .collect();
            files.sort();
            out.extend(files);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(anyhow!(
                "{}: no such file or folder of test cases (.json or .jsonl files; \
                 by default the policy dir's tests/, or [policy] tests)",
                shown(p)
            ));
        }
    }
    Ok(out)
}

/// `path` for display: `.` dropped and `dir/..` folded, lexically (the
/// file system is not asked; `..` at the start of a relative path stays).
pub fn shown(path: &Path) -> String {
    use std::path::Component;
    let mut parts: Vec<Component> = vec![];
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match parts.last() {
                Some(Component::Normal(_)) => {
                    parts.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => parts.push(c),
            },
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return ".".into();
    }
    parts.iter().collect::<PathBuf>().display().to_string()
}

/// serde_json's message without its own ` at line L column C` (the caller
/// prints the position once, as `file:line:col:`).
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_string()
}

fn parse(path: &Path) -> anyhow::Result<Vec<Case>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", shown(path)))?;
    let at = |line: usize, e: &serde_json::Error| {
        anyhow!("{}:{line}:{}: {}", shown(path), e.column(), json_message(e))
    };
    if path.extension().is_some_and(|x| x == "jsonl") {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| at(i + 1, &e)))
            .collect()
    } else {
        serde_json::from_str(&text).map_err(|e| at(e.line(), &e))
    }
}

/// What the case's call decides: "allow", "deny" or "approval", plus detail.
pub fn evaluate(
    case: &Case,
    policy: &PolicyEngine,
    connections: &[Arc<dyn Connector>],
) -> (String, String) {
    let requests: Vec<AccessRequest> = match (&case.tool, &case.action) {
        (Some(tool), _) => {
            let args = case.arguments.clone().unwrap_or(Value::Null);
            let name = args
                .get("connection")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(conn) = connections.iter().find(|c| c.info().name == name) else {
                return ("deny".into(), format!("unknown connection {name:?}"));
            };
            match conn.analyse(tool, &args) {
                Ok(plan) => std::iter::once(connect_request(name))
                    .chain(plan.requests)
                    .collect(),
                Err(e) => return ("deny".into(), format!("analysis: {e}")),
            }
        }
        (None, Some(action)) => match &case.resource {
            Some(r) => vec![AccessRequest {
                action: action.clone(),
                resource: r.clone(),
                context: case.context.clone(),
            }],
            None => return ("deny".into(), "case has an action but no resource".into()),
        },
        (None, None) => {
            return (
                "deny".into(),
                "case needs `tool`+`arguments` or `action`+`resource`".into(),
            );
        }
    };
    let d = policy.decide(&case.principal, &requests);
    let cap = d.max_affected.as_ref().map(|c| c.rows);
    let (got, detail) = match d.verdict {
        Verdict::Allow => (
            "allow".into(),
            format!(
                "permitted by {}",
                d.requests
                    .iter()
                    .flat_map(|r| r.policies.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Verdict::Deny { message, .. } => ("deny".into(), message),
        Verdict::NeedsApproval(reqs) => (
            "approval".into(),
            reqs.iter()
                .map(|r| format!("{} x{} ({})", r.group, r.count, r.policy))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    };
    match (case.max_affected_rows, cap) {
        (Some(want), have) if have != Some(want) => (
            format!(
                "{got} with max_affected_rows {}",
                have.map_or("unset".to_string(), |n| n.to_string())
            ),
            format!("expected max_affected_rows {want}; {detail}"),
        ),
        _ => (got, detail),
    }
}

/// Run the cases; exit 1 if any fails.
pub fn run(path: &Path, cases: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let policy =
        app::policies(&config).map_err(|e| anyhow!("invalid policies:\n{}", e.join("\n")))?;
    let connections =
        connectors::build(&config).map_err(|e| anyhow!("{}", gateway_core::text::lines(&e)))?;
    let default_dir = config
        .policy
        .tests
        .clone()
        .map(|t| config.resolve_path(&t))
        .unwrap_or_else(|| config.resolve_path(&config.policy.dir).join("tests"));
    let paths = if cases.is_empty() {
        vec![default_dir]
    } else {
        cases.to_vec()
    };
    let (mut passed, mut failed) = (0, 0);
    for file in collect(&paths)? {
        for case in parse(&file)? {
            let (got, detail) = evaluate(&case, &policy, &connections);
            if got == case.expect {
                passed += 1;
                println!("ok   {} :: {} ({got})", shown(&file), case.name);
            } else {
                failed += 1;
                println!(
                    "FAIL {} :: {}: expected {}, got {got}: {detail}",
                    shown(&file),
                    case.name,
                    case.expect
                );
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if passed + failed == 0 {
        eprintln!("no test cases found: nothing was tested");
    }
    Ok(if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
