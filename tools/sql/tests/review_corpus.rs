//! Review parts over the whole analysis corpus (`tests/corpus/sql`): the
//! canonical text of every statement that analyses is cut into code and
//! literal parts (never the whole-statement fallback), and the parts join
//! back to that text byte for byte.

use std::path::PathBuf;

use gateway_core::review::TextPart;
use tollgate_sql::analysis::{Dialect, analyse};
use tollgate_sql::review::try_parts;

#[test]
fn every_analysed_statement_of_the_corpus_cuts_into_parts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/sql");
    let mut checked = 0;
    let mut problems = Vec::new();
    for (file, dialect, schema) in [
        ("postgres.jsonl", Dialect::Postgres, "public"),
        ("mysql.jsonl", Dialect::MySql, "shop"),
        ("sqlite.jsonl", Dialect::Sqlite, "main"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).expect("corpus file");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let case: serde_json::Value = serde_json::from_str(line).expect("corpus line");
            let sql = case["sql"].as_str().expect("sql");
            let Ok(analysis) = analyse(dialect, "shop", schema, sql) else {
                continue;
            };
            for s in &analysis.statements {
                checked += 1;
                match try_parts(dialect, &s.sql) {
                    None => problems.push(format!("{file}: cannot cut {:?}", s.sql)),
                    Some(parts) => {
                        let joined: String = parts.iter().map(TextPart::text).collect();
                        if joined != s.sql {
                            problems
                                .push(format!("{file}: parts of {:?} join to {joined:?}", s.sql));
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} statements checked");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
