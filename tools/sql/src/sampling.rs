//! Classification of a SQL connection's columns by sampling them (the SQL
//! side of [`gateway_core::classify`]).
//!
//! Lists every table and view the connection can describe (the engine's
//! `schema()` call), then reads at most `sample_rows` non-null values of each
//! column worth reading, one `SELECT col FROM schema.table WHERE col IS NOT
//! NULL LIMIT n` per column through the engine's read-only query path, all
//! within the run's time budget. Columns of types that cannot hold a
//! detectable value (booleans, dates and times, floats, binary, integers
//! too short for a card number) are skipped; SQLite's declared types are
//! hints only, so every SQLite column is read. Exempt columns are never
//! read; pinned ones are classified without reading. The values are judged
//! by the [`Classifier`] and dropped: only counts leave this module.

use std::time::{Duration, Instant};

use gateway_core::classify::{ClassificationReport, ClassifiedBy, Classifier, FieldClass, Tally};
use gateway_core::connector::{ExecLimits, ExecuteError, FieldPath};
use serde_json::Value;

use crate::analysis::Dialect;
use crate::analysis::lineage::Lineage;
use crate::connector::Classification;
use crate::engine::{Engine, Redactor};
use crate::prepared::{PreparedStatement, QueryCall, SchemaCall};
use crate::result::Caps;

/// Byte cap on one column's sample (values past it are not read).
const SAMPLE_MAX_BYTES: usize = 4 << 20;

/// One column the schema lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaColumn {
    /// Schema, table and column as the database spells them.
    pub schema: String,
    /// Table or view.
    pub table: String,
    /// Column.
    pub column: String,
    /// Database type name.
    pub type_name: String,
}

/// The columns of a `sql_schema` result (`{tables: [{schema, name, columns: [{name, type}]}]}`).
pub fn schema_columns(schema: &Value) -> Vec<SchemaColumn> {
    crate::listing::tables(schema)
        .flat_map(|t| {
            t.columns
                .iter()
                .map(move |(column, type_name)| SchemaColumn {
                    schema: t.schema.to_string(),
                    table: t.name.to_string(),
                    column: column.to_string(),
                    type_name: type_name.to_string(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The classification key of a column: as the analysis names it
/// (PostgreSQL exactly; MySQL and SQLite folded to lower case).
pub fn key(dialect: Dialect, schema: &str, table: &str, column: &str) -> (String, String, String) {
    let f = |s: &str| {
        if dialect == Dialect::Postgres {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    (f(schema), f(table), f(column))
}

/// Can a column of this declared type hold a value the detectors find?
/// No for booleans, dates and times, floats, binary, uuids and integers of
/// at most 32 bits (10 digits: shorter than any card number). SQLite's
/// declared types bind nothing, so every SQLite column is read.
pub fn worth_sampling(dialect: Dialect, type_name: &str) -> bool {
    if dialect == Dialect::Sqlite {
        return true;
    }
    let t = type_name.trim().to_ascii_lowercase();
    const NEVER: [&str; 15] = [
        "bool", "date", "time", "interval", "float", "double", "real", "blob", "bytea", "binary",
        "bit", "serial", "uuid", "geometry", "year",
    ];
    if NEVER.iter().any(|n| t.contains(n)) {
        return false;
    }
    let base = t.split(['(', ' ']).next().unwrap_or_default();
    !matches!(
        base,
        "smallint" | "int2" | "tinyint" | "mediumint" | "int" | "integer" | "int4"
    )
}

fn quote(dialect: Dialect, name: &str) -> String {
    match dialect {
        Dialect::MySql => format!("`{}`", name.replace('`', "``")),
        _ => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// The statement that samples one column.
pub fn sample_sql(dialect: Dialect, c: &SchemaColumn, rows: u64) -> String {
    let col = quote(dialect, &c.column);
    format!(
        "SELECT {col} FROM {}.{} WHERE {col} IS NOT NULL LIMIT {rows}",
        quote(dialect, &c.schema),
        quote(dialect, &c.table)
    )
}

fn limits(budget: Duration) -> ExecLimits {
    ExecLimits {
        max_items: None,
        max_bytes: usize::MAX,
        max_affected: None,
        timeout: Some(budget),
        cancel: Default::default(),
        caller: None,
        progress: None,
        intent: Default::default(),
    }
}

/// Classify the columns of the connection `connection` served by `engine`:
/// the new classification (pins, sampled columns, and the `previous` entry
/// of every column not reached in time or whose sample failed) and the
/// report. Fails only when the schema cannot be listed. Errors pass through
/// `redactor` before they are logged.
pub async fn classify(
    engine: &dyn Engine,
    redactor: &Redactor,
    dialect: Dialect,
    connection: &str,
    classifier: &Classifier,
    previous: &Classification,
) -> Result<(Classification, ClassificationReport), ExecuteError> {
    let started = Instant::now();
    let remaining = || classifier.timeout().saturating_sub(started.elapsed());
    let schema = engine
        .schema(&SchemaCall::default(), &limits(remaining()))
        .await?;
    let columns = schema_columns(&schema);
    let mut report = ClassificationReport {
        fields: columns.len() as u64,
        complete: true,
        ..Default::default()
    };
    let mut out = Classification::new();
    for c in &columns {
        let field = FieldPath::new([c.schema.as_str(), c.table.as_str(), c.column.as_str()]);
        let k = key(dialect, &c.schema, &c.table, &c.column);
        if classifier.is_exempt(connection, &field) {
            report.exempt_fields += 1;
            continue;
        }
        if let Some(t) = classifier.pinned(connection, &field) {
            out.insert(k, t.to_string());
            report.classified.push(FieldClass {
                field,
                type_name: t.to_string(),
                sampled: 0,
                hits: 0,
                by: ClassifiedBy::Pin,
            });
            continue;
        }
        if !classifier.enabled() {
            continue;
        }
        if !worth_sampling(dialect, &c.type_name) {
            report.skipped_fields += 1;
            continue;
        }
        let keep_previous = |out: &mut Classification, report: &mut ClassificationReport| {
            if let Some(t) = previous.get(&k) {
                out.insert(k.clone(), t.clone());
                report.classified.push(FieldClass {
                    field: field.clone(),
                    type_name: t.clone(),
                    sampled: 0,
                    hits: 0,
                    by: ClassifiedBy::Previous,
                });
            }
        };
        let budget = remaining();
        if budget.is_zero() {
            report.complete = false;
            keep_previous(&mut out, &mut report);
            continue;
        }
        let call = QueryCall {
            statements: vec![PreparedStatement {
                kind: "select".into(),
                tables: vec![format!("{}.{}", c.schema, c.table)],
                sql: sample_sql(dialect, c, classifier.sample_rows()),
                touches_session: false,
                lineage: std::sync::Arc::new(Lineage::default()),
            }],
            params: Vec::new(),
            max_rows: Some(classifier.sample_rows()),
            read_only: true,
            max_affected: None,
        };
        let caps = Caps {
            max_rows: classifier.sample_rows(),
            max_bytes: SAMPLE_MAX_BYTES,
        };
        let rows = match engine.query(&call, caps, &limits(budget)).await {
            Ok(outcome) => outcome.rows.map(|r| r.rows).unwrap_or_default(),
            Err(e) => {
                if matches!(e, ExecuteError::Timeout(_)) && remaining().is_zero() {
                    report.complete = false;
                } else {
                    report.failed_fields += 1;
                    tracing::debug!(
                        connection,
                        field = %field,
                        error = %redactor.error(e),
                        "cannot sample a column; it keeps its earlier classification"
                    );
                }
                keep_previous(&mut out, &mut report);
                continue;
            }
        };
        let mut tally = Tally::default();
        for row in &rows {
            if let Some(v) = row.first() {
                classifier.count(&mut tally, v);
            }
        }
        drop(rows);
        report.sampled_fields += 1;
        report.sampled_values += tally.sampled;
        if let Some((t, hits)) = classifier.judge(&tally) {
            out.insert(k, t.clone());
            report.classified.push(FieldClass {
                field,
                type_name: t,
                sampled: tally.sampled,
                hits,
                by: ClassifiedBy::Sample,
            });
        }
    }
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use gateway_core::mask::{ClassificationConfig, Masker};
    use serde_json::json;

    use super::*;
    use crate::result::{ColumnDesc, QueryOutcome, RowSet};

    /// An engine with a fixed schema and fixed column values; records the
    /// statements it runs. A column named `broken` fails; `slow` sleeps.
    struct Fake {
        schema: Value,
        values: Vec<(&'static str, Vec<Value>)>,
        ran: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Engine for Fake {
        async fn query(
            &self,
            call: &QueryCall,
            caps: Caps,
            stop: &ExecLimits,
        ) -> Result<QueryOutcome, ExecuteError> {
            let sql = call.statements[0].sql.clone();
            assert!(call.read_only, "sampling runs read-only");
            self.ran.lock().unwrap().push(sql.clone());
            if sql.contains("\"broken\"") {
                return Err(ExecuteError::Target("permission denied".into()));
            }
            if sql.contains("\"slow\"") {
                let budget = stop.timeout.unwrap();
                tokio::time::sleep(budget).await;
                return Err(ExecuteError::Timeout(budget.as_millis() as u64));
            }
            let column = self
                .values
                .iter()
                .find(|(c, _)| sql.contains(&format!("SELECT \"{c}\"")))
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let mut set = RowSet::new(
                vec![ColumnDesc {
                    name: "c".into(),
                    type_name: "text".into(),
                }],
                caps,
            );
            for v in column {
                if !set.push(vec![v]) {
                    break;
                }
            }
            Ok(QueryOutcome {
                rows: Some(set),
                affected: 0,
            })
        }

        async fn schema(&self, _: &SchemaCall, _: &ExecLimits) -> Result<Value, ExecuteError> {
            Ok(self.schema.clone())
        }
    }

    fn fake(columns: &[(&'static str, &str)], values: Vec<(&'static str, Vec<Value>)>) -> Fake {
        let cols: Vec<Value> = columns
            .iter()
            .map(|(n, t)| json!({"name": n, "type": t}))
            .collect();
        Fake {
            schema: json!({"tables": [{"schema": "public", "name": "people", "columns": cols}]}),
            values,
            ran: Mutex::new(Vec::new()),
        }
    }

    fn classifier(v: Value) -> Classifier {
        let c: ClassificationConfig = serde_json::from_value(v).unwrap();
        Classifier::new(&c, Arc::new(Masker::default())).unwrap()
    }

    fn k(c: &str) -> (String, String, String) {
        key(Dialect::Postgres, "public", "people", c)
    }

    #[tokio::test]
    async fn samples_judges_and_reads_no_exempt_pinned_or_skipped_column() {
        let emails: Vec<Value> = (0..10)
            .map(|i| json!(format!("p{i}@example.com")))
            .collect();
        let mut half: Vec<Value> = emails[..4].to_vec();
        half.extend((0..6).map(|i| json!(format!("note {i}"))));
        let engine = fake(
            &[
                ("email", "text"),
                ("notes", "text"),
                ("memo", "text"),
                ("tax", "text"),
                ("born", "date"),
                ("age", "integer"),
            ],
            vec![("email", emails.clone()), ("notes", half), ("memo", emails)],
        );
        let c = classifier(json!({
            "sample_rows": 7,
            "exempt": ["shop.public.people.memo"],
            "pin": [{"connection": "shop", "column": "public.people.tax", "type": "TAX_ID"}]
        }));
        let (map, report) = classify(
            &engine,
            &Redactor::default(),
            Dialect::Postgres,
            "shop",
            &c,
            &Classification::new(),
        )
        .await
        .unwrap();
        assert_eq!(map.get(&k("email")).map(String::as_str), Some("EMAIL"));
        assert_eq!(map.get(&k("tax")).map(String::as_str), Some("TAX_ID"));
        // Only the first 7 notes are read: 4 emails of 7 values, >= 0.5.
        assert_eq!(map.get(&k("notes")).map(String::as_str), Some("EMAIL"));
        assert!(!map.contains_key(&k("memo")) && !map.contains_key(&k("born")));
        assert_eq!(
            (
                report.fields,
                report.sampled_fields,
                report.exempt_fields,
                report.skipped_fields
            ),
            (6, 2, 1, 2)
        );
        assert_eq!(report.sampled_values, 14, "at most sample_rows per column");
        assert!(report.complete);
        let ran = engine.ran.lock().unwrap().join("\n");
        for never in ["memo", "tax", "born", "age"] {
            assert!(
                !ran.contains(&format!("\"{never}\"")),
                "{never} was read: {ran}"
            );
        }
        assert!(ran.contains("LIMIT 7"), "{ran}");
    }

    #[tokio::test]
    async fn below_the_threshold_is_not_classified() {
        let mut v: Vec<Value> = (0..3).map(|i| json!(format!("p{i}@example.com"))).collect();
        v.extend((0..7).map(|i| json!(format!("note {i}"))));
        let engine = fake(&[("notes", "text")], vec![("notes", v)]);
        let (map, _) = classify(
            &engine,
            &Redactor::default(),
            Dialect::Postgres,
            "shop",
            &classifier(json!({"threshold": 0.5})),
            &Classification::new(),
        )
        .await
        .unwrap();
        assert!(map.is_empty(), "3/10 < 0.5: {map:?}");
        let (map, _) = classify(
            &engine,
            &Redactor::default(),
            Dialect::Postgres,
            "shop",
            &classifier(json!({"threshold": 0.3})),
            &Classification::new(),
        )
        .await
        .unwrap();
        assert_eq!(map.get(&k("notes")).map(String::as_str), Some("EMAIL"));
    }

    #[tokio::test]
    async fn failed_and_unreached_columns_keep_their_previous_classification() {
        let engine = fake(
            &[
                ("broken", "text"),
                ("slow", "text"),
                ("late", "text"),
                ("gone", "text"),
            ],
            vec![],
        );
        let mut previous = Classification::new();
        previous.insert(k("broken"), "EMAIL".into());
        previous.insert(k("late"), "US_SSN".into());
        let (map, report) = classify(
            &engine,
            &Redactor::default(),
            Dialect::Postgres,
            "shop",
            &classifier(json!({"timeout": "200ms"})),
            &previous,
        )
        .await
        .unwrap();
        // `broken` failed, `slow` used up the budget, `late` was never reached.
        assert_eq!(map.get(&k("broken")).map(String::as_str), Some("EMAIL"));
        assert_eq!(map.get(&k("late")).map(String::as_str), Some("US_SSN"));
        assert!(!map.contains_key(&k("gone")));
        assert_eq!(report.failed_fields, 1);
        assert!(!report.complete);
        assert!(
            report
                .classified
                .iter()
                .all(|f| f.by == ClassifiedBy::Previous)
        );
    }

    #[test]
    fn types_worth_sampling() {
        let pg = |t| worth_sampling(Dialect::Postgres, t);
        let my = |t| worth_sampling(Dialect::MySql, t);
        assert!(pg("text") && pg("character varying") && pg("bigint") && pg("numeric"));
        assert!(pg("jsonb") && pg("inet") && pg(""));
        assert!(!pg("integer") && !pg("int4") && !pg("boolean") && !pg("timestamp with time zone"));
        assert!(!pg("bytea") && !pg("double precision") && !pg("uuid") && !pg("date"));
        assert!(my("varchar(255)") && my("bigint unsigned") && my("decimal(20,0)"));
        assert!(!my("int(11)") && !my("tinyint(1)") && !my("datetime") && !my("varbinary(16)"));
        // SQLite types are hints: an INTEGER column may hold a card number,
        // a DATE column an email.
        assert!(worth_sampling(Dialect::Sqlite, "INTEGER"));
        assert!(worth_sampling(Dialect::Sqlite, "DATE"));
    }

    #[test]
    fn sample_statements_quote_every_name() {
        let c = SchemaColumn {
            schema: "public".into(),
            table: "we\"ird".into(),
            column: "e-mail".into(),
            type_name: "text".into(),
        };
        assert_eq!(
            sample_sql(Dialect::Postgres, &c, 100),
            "SELECT \"e-mail\" FROM \"public\".\"we\"\"ird\" WHERE \"e-mail\" IS NOT NULL LIMIT 100"
        );
        assert_eq!(
            sample_sql(Dialect::MySql, &c, 5),
            "SELECT `e-mail` FROM `public`.`we\"ird` WHERE `e-mail` IS NOT NULL LIMIT 5"
        );
    }

    #[test]
    fn keys_fold_as_the_analysis_does() {
        assert_eq!(
            key(Dialect::Sqlite, "main", "Customers", "EMAIL"),
            ("main".into(), "customers".into(), "email".into())
        );
        assert_eq!(
            key(Dialect::Postgres, "public", "Customers", "EMAIL"),
            ("public".into(), "Customers".into(), "EMAIL".into())
        );
    }
}
