//! Analysis corpus: every line of `tests/corpus/sql/<dialect>.jsonl` is one
//! case (format in `tests/corpus/sql/README.md`). Runs `analyse` on each,
//! compares with the expectations, checks that the canonical text of every
//! statement re-parses to an equal AST and analyses the same, and reports
//! every mismatch (not just the first).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;
use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use tollgate_sql::analysis::{Dialect, SqlAnalysis, analyse};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// The SQL sent by the agent.
    sql: String,
    /// Expected requests in order: [action, resource kind, resource id].
    #[serde(default)]
    requests: Option<Vec<(String, String, String)>>,
    /// Expected `functions` context (exact set, union over statements).
    #[serde(default)]
    functions: Option<BTreeSet<String>>,
    /// Expected `has_where` of every statement.
    #[serde(default)]
    has_where: Option<bool>,
    /// Expected `read_only` of every statement.
    #[serde(default)]
    read_only: Option<bool>,
    /// Expected kinds, one per statement.
    #[serde(default)]
    kinds: Option<Vec<String>>,
    /// The analysis must fail with a reason containing this text.
    #[serde(default)]
    deny: Option<String>,
    /// This case is an attempt to slip something past a read-only policy.
    #[serde(default)]
    attack: bool,
    /// Free text for humans.
    #[serde(default)]
    #[allow(dead_code, reason = "documentation only")]
    note: Option<String>,
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/sql")
}

fn check_case(dialect: Dialect, schema: &str, case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let result = analyse(dialect, "shop", schema, &case.sql);
    match (&case.deny, result) {
        (Some(want), Err(e)) => {
            if !e.to_string().contains(want.as_str()) {
                problems.push(format!(
                    "denied, but reason {:?} does not contain {want:?}",
                    e.to_string()
                ));
            }
        }
        (Some(_), Ok(a)) => problems.push(format!("expected a denial, got {:?}", summary(&a))),
        (None, Err(e)) => problems.push(format!("unexpected denial: {e}")),
        (None, Ok(a)) => {
            if case.requests.is_none() {
                problems.push("case has neither `requests` nor `deny`".into());
            }
            if let Some(want) = &case.requests {
                let got = summary(&a);
                if &got != want {
                    problems.push(format!(
                        "requests differ\n      want {want:?}\n      got  {got:?}"
                    ));
                }
            }
            let functions: BTreeSet<String> = a
                .statements
                .iter()
                .flat_map(|s| s.functions.iter().cloned())
                .collect();
            if let Some(want) = &case.functions
                && &functions != want
            {
                problems.push(format!(
                    "functions differ\n      want {want:?}\n      got  {functions:?}"
                ));
            }
            for s in &a.statements {
                if let Some(want) = case.has_where
                    && s.has_where != want
                {
                    problems.push(format!(
                        "has_where: want {want}, got {} for {}",
                        s.has_where, s.sql
                    ));
                }
                if let Some(want) = case.read_only
                    && s.read_only != want
                {
                    problems.push(format!(
                        "read_only: want {want}, got {} for {}",
                        s.read_only, s.sql
                    ));
                }
            }
            if let Some(want) = &case.kinds {
                let got: Vec<String> = a.statements.iter().map(|s| s.kind.clone()).collect();
                if &got != want {
                    problems.push(format!("kinds: want {want:?}, got {got:?}"));
                }
            }
            problems.extend(round_trip(dialect, schema, &case.sql, &a));
        }
    }
    problems
}

/// The executor runs the canonical text: it must parse to exactly one
/// statement, analyse to the same requests, tables, functions and kind, and
/// (PostgreSQL, SQLite) name every table explicitly: analysed again with
/// another default schema it still resolves every name the same way.
fn round_trip(dialect: Dialect, schema: &str, sql: &str, a: &SqlAnalysis) -> Vec<String> {
    let parser_dialect: Box<dyn sqlparser::dialect::Dialect> = match dialect {
        Dialect::Postgres => Box::new(PostgreSqlDialect {}),
        Dialect::MySql => Box::new(MySqlDialect {}),
        Dialect::Sqlite => Box::new(SQLiteDialect {}),
    };
    let mut problems = Vec::new();
    if let Err(e) = Parser::parse_sql(&*parser_dialect, sql) {
        return vec![format!("analysed but does not parse directly: {e}")];
    }
    let requests_of = |b: &SqlAnalysis, statement: &str| -> Vec<(String, String)> {
        b.requests
            .iter()
            .filter(|r| {
                r.context.get("statement")
                    == Some(&gateway_core::access::ContextValue::String(
                        statement.into(),
                    ))
            })
            .map(|r| (r.action.clone(), r.resource.id.clone()))
            .collect()
    };
    for analysed in &a.statements {
        match Parser::parse_sql(&*parser_dialect, &analysed.sql) {
            Ok(again) if again.len() == 1 => {}
            Ok(again) => problems.push(format!(
                "canonical text {:?} re-parses to {} statements",
                analysed.sql,
                again.len()
            )),
            Err(e) => problems.push(format!(
                "canonical text {:?} does not re-parse: {e}",
                analysed.sql
            )),
        }
        let elsewhere = if dialect == Dialect::MySql {
            schema
        } else {
            "elsewhere"
        };
        for default_schema in [schema, elsewhere] {
            match analyse(dialect, "shop", default_schema, &analysed.sql) {
                Ok(b) => {
                    if b.statements.len() != 1
                        || b.statements[0].functions != analysed.functions
                        || b.statements[0].tables != analysed.tables
                        || b.statements[0].kind != analysed.kind
                        || b.statements[0].sql != analysed.sql
                        || requests_of(&b, &analysed.sql) != requests_of(a, &analysed.sql)
                    {
                        problems.push(format!(
                            "canonical text {:?} analyses differently (default schema {default_schema}): {:?}",
                            analysed.sql,
                            summary(&b)
                        ));
                    }
                }
                Err(e) => {
                    problems.push(format!("canonical text {:?} is denied: {e}", analysed.sql))
                }
            }
        }
    }
    problems
}

fn summary(a: &SqlAnalysis) -> Vec<(String, String, String)> {
    a.requests
        .iter()
        .map(|r| {
            (
                r.action.clone(),
                r.resource.kind.clone(),
                r.resource.id.clone(),
            )
        })
        .collect()
}

fn run(file: &str, dialect: Dialect, schema: &str, min_cases: usize) {
    let path = corpus_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut failures = Vec::new();
    let (mut total, mut attacks) = (0, 0);
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let case: Case = match serde_json::from_str(line) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{file}:{}: bad case: {e}\n    {line}", n + 1));
                continue;
            }
        };
        total += 1;
        attacks += usize::from(case.attack);
        let problems = check_case(dialect, schema, &case);
        if !problems.is_empty() {
            failures.push(format!(
                "{file}:{}: {line}\n    {}",
                n + 1,
                problems.join("\n    ")
            ));
        }
    }
    println!("{file}: {total} cases, {attacks} attack cases");
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(total >= min_cases, "{file}: only {total} cases");
    assert!(
        attacks * 2 >= total,
        "{file}: only {attacks} of {total} cases are attacks"
    );
}

#[test]
fn postgres_corpus() {
    run("postgres.jsonl", Dialect::Postgres, "public", 150);
}

#[test]
fn mysql_corpus() {
    run("mysql.jsonl", Dialect::MySql, "shop", 150);
}

#[test]
fn sqlite_corpus() {
    run("sqlite.jsonl", Dialect::Sqlite, "main", 150);
}
