//! MySQL / MariaDB execution through sqlx: a lazy pool whose connections set
//! the statement timeout once at connect (`max_statement_time` on MariaDB,
//! `max_execution_time` on MySQL, which MySQL applies to SELECT only), one
//! transaction per call (`START TRANSACTION READ ONLY` for read-only plans),
//! server-side prepared statements (cached by sqlx) with bound parameters,
//! and rows streamed until the caps. A tokio timeout backstops the server
//! one; a connection that timed out is closed, not reused.
//!
//! Field origins: the column definitions the server sends carry the source
//! schema, table and column; sqlx exposes them as `Column::origin()`.

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use gateway_core::connector::{ExecLimits, ExecuteError, IntentGate};
use gateway_core::secret::Secret;
use serde_json::{Value, json};
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlPoolOptions, MySqlRow};
use sqlx::{AssertSqlSafe, Column, Executor, Row, SqlSafeStr, Statement, TypeInfo, ValueRef};

use crate::affected::Tally;
use crate::config::{CONNECT_TIMEOUT, SqlConfig};
use crate::engine::{Engine, ViewDefinition};
use crate::prepared::{QueryCall, SchemaCall};
use crate::result::{Caps, ColumnDesc, QueryOutcome, RowSet};
use crate::sqlx_common::{bind_json, decimal, fill, map_common};

/// Drops `ANSI_QUOTES` and `NO_BACKSLASH_ESCAPES` from the session's
/// `sql_mode` (a server default may set them): with them, quotes and
/// backslashes would mean something else to the server than to the analysis.
const TOKENIZE_LIKE_ANALYSIS: &str = "SET SESSION sql_mode = TRIM(BOTH ',' FROM \
     REPLACE(REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), ',ANSI_QUOTES,', ','), \
     ',NO_BACKSLASH_ESCAPES,', ','))";

/// A MySQL/MariaDB connection's engine.
pub struct MySqlEngine {
    options: MySqlConnectOptions,
    database: String,
    timeout: Duration,
    pool_size: u32,
    pool: OnceLock<MySqlPool>,
}

impl MySqlEngine {
    /// Validate the URL; the pool is created on first use and connects lazily.
    pub fn new(config: &SqlConfig, url: &Secret) -> Result<Self, String> {
        let raw = url.expose();
        let normalized = raw
            .strip_prefix("mariadb://")
            .map(|r| format!("mysql://{r}"))
            .unwrap_or_else(|| raw.to_string());
        let options: MySqlConnectOptions = normalized.parse().map_err(|e: sqlx::Error| {
            format!(
                "invalid mysql url: {}",
                crate::engine::Redactor::for_url(raw).clean(e.to_string())
            )
        })?;
        let database = options.get_database().map(str::to_string).ok_or_else(|| {
            "the mysql url must name a database (mysql://user:pass@host/DB)".to_string()
        })?;
        Ok(MySqlEngine {
            options,
            database,
            timeout: config.statement_timeout,
            pool_size: config.pool_size as u32,
            pool: OnceLock::new(),
        })
    }

    /// The database named in the URL (the default schema).
    pub fn database(&self) -> &str {
        &self.database
    }

    fn pool(&self) -> &MySqlPool {
        self.pool.get_or_init(|| {
            let ms = self.timeout.as_millis().max(1) as u64;
            MySqlPoolOptions::new()
                .max_connections(self.pool_size)
                .acquire_timeout(CONNECT_TIMEOUT)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        let version: String = sqlx::query_scalar("SELECT VERSION()")
                            .fetch_one(&mut *conn)
                            .await?;
                        let set = if version.to_ascii_lowercase().contains("mariadb") {
                            format!("SET SESSION max_statement_time = {:.3}", ms as f64 / 1000.0)
                        } else {
                            format!("SET SESSION max_execution_time = {ms}")
                        };
                        conn.execute(sqlx::raw_sql(AssertSqlSafe(set))).await?;
                        // The analysis reads "..." as a string and \ as an escape:
                        // the session must tokenize the same way.
                        conn.execute(sqlx::raw_sql(TOKENIZE_LIKE_ANALYSIS)).await?;
                        Ok(())
                    })
                })
                .connect_lazy_with(self.options.clone())
        })
    }

    fn map_err(&self, e: sqlx::Error) -> ExecuteError {
        let e = match map_common(e) {
            Ok(mapped) => return mapped,
            Err(e) => e,
        };
        let sqlx::Error::Database(db) = &e else {
            return ExecuteError::Target(e.to_string());
        };
        let number = db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(|m| m.number())
            .unwrap_or(0);
        match number {
            // max_statement_time (MariaDB), max_execution_time (MySQL), interrupted
            1969 | 3024 | 1317 => ExecuteError::Timeout(self.timeout.as_millis() as u64),
            1045 | 1044 | 1049 | 1040 | 1129 | 1130 | 1203 => {
                ExecuteError::Unavailable(format!("{} (error {number})", db.message()))
            }
            _ => ExecuteError::Target(format!("{} (error {number})", db.message())),
        }
    }

    async fn work(
        &self,
        conn: &mut sqlx::MySqlConnection,
        call: &QueryCall,
        caps: Caps,
        intent: &IntentGate,
    ) -> Result<QueryOutcome, ExecuteError> {
        let begin = if call.read_only {
            "START TRANSACTION READ ONLY"
        } else {
            "START TRANSACTION"
        };
        conn.execute(sqlx::raw_sql(begin))
            .await
            .map_err(|e| self.map_err(e))?;
        let mut outcome = QueryOutcome {
            rows: None,
            affected: 0,
        };
        let mut tally = Tally::new(call, true)?;
        for (index, st) in call.statements.iter().enumerate() {
            // The binary protocol prepares exactly one statement: the server
            // refuses a text that holds more, whatever a parser thought.
            let stmt = conn
                .prepare(AssertSqlSafe(st.sql.clone()).into_sql_str())
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(db)
                        if db
                            .try_downcast_ref::<MySqlDatabaseError>()
                            .is_some_and(|m| m.number() == 1295) =>
                    {
                        ExecuteError::Target(format!(
                            "{} (error 1295): Tollgate runs every statement as one prepared statement and this one cannot be prepared",
                            db.message()
                        ))
                    }
                    e => self.map_err(e),
                })?;
            let params = crate::sqlx_common::params_for(stmt.parameters(), &call.params)?;
            let mut q = stmt.query();
            for p in params {
                q = bind_json(q, p);
            }
            if stmt.columns().is_empty() {
                outcome.affected = q
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| self.map_err(e))?
                    .rows_affected();
                tally.statement(&st.kind, outcome.affected);
                continue;
            }
            let columns = stmt
                .columns()
                .iter()
                .map(|c| ColumnDesc {
                    name: c.name().to_string(),
                    type_name: c.type_info().name().to_string(),
                })
                .collect();
            let mut set = RowSet::new(columns, caps);
            set.statement = index;
            set.origins = stmt
                .columns()
                .iter()
                .map(|c| {
                    c.origin()
                        .table_column()
                        .map(|t| format!("{}.{}", t.table, t.name))
                })
                .collect();
            fill(q.fetch(&mut *conn), &mut set, min_json_size, decode, |e| {
                self.map_err(e)
            })
            .await?;
            outcome.affected = set.rows.len() as u64;
            tally.returned(&st.kind, &set);
            outcome.rows = Some(set);
        }
        // Blast-radius guard: over the cap, the error path rolls back.
        tally.check()?;
        // Write-ahead audit: nothing becomes permanent before the call's
        // intent is durable; if it cannot be recorded, the error path rolls back.
        intent.durable().await?;
        conn.execute(sqlx::raw_sql("COMMIT"))
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(outcome)
    }

    /// Run `f` on a pooled connection. `changes_session`: the call ran
    /// statements (SET, USE...) whose effect outlives the transaction, so
    /// the connection is closed instead of being handed to the next call.
    /// When `stop` fires first (cancelled, or the budget ran out) the
    /// statement is abandoned and its connection closed: the server ends
    /// the statement when it notices, and `max_statement_time` bounds it.
    async fn guarded<T>(
        &self,
        limit: Duration,
        changes_session: bool,
        stop: &ExecLimits,
        f: impl for<'c> AsyncFnOnce(&'c mut sqlx::MySqlConnection) -> Result<T, ExecuteError>,
    ) -> Result<T, ExecuteError> {
        stop.check()?;
        // Connecting has its own timeout (an unreachable server is
        // `Unavailable`); the time budget counts from the statement on.
        let mut conn = tokio::select! {
            c = self.pool().acquire() => c.map_err(|e| self.map_err(e))?,
            e = stop.stopped(tokio::time::Instant::now(), None) => return Err(e),
        };
        let started = tokio::time::Instant::now();
        let budget = Some(stop.timeout_within(limit));
        if changes_session {
            conn.close_on_drop();
        }
        let ran = tokio::select! {
            r = f(&mut conn) => Ok(r),
            e = stop.stopped(started, budget) => Err(e),
        };
        match ran {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if conn.execute(sqlx::raw_sql("ROLLBACK")).await.is_err() {
                    conn.close_on_drop();
                }
                Err(e)
            }
            Err(e) => {
                // The connection is mid-statement: never hand it back.
                conn.close_on_drop();
                Err(self.stop_error(e))
            }
        }
    }

    /// A timeout names the connection's statement timeout, as the server's
    /// own would; a cancellation stays one.
    fn stop_error(&self, e: ExecuteError) -> ExecuteError {
        match e {
            ExecuteError::Timeout(_) => ExecuteError::Timeout(self.timeout.as_millis() as u64),
            other => other,
        }
    }
}

fn float(f: f64) -> Value {
    if f.is_finite() {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    } else {
        Value::String(f.to_string())
    }
}

/// A lower bound of a value's JSON size from its raw bytes, read before the
/// row is decoded: strings and binary values come back at least as long
/// (binary as base64); JSON text may shrink (whitespace, `\uXXXX`
/// escapes) to a sixth; numbers and temporal values are small. The row
/// itself is already in memory: sqlx reads whole packets, so the server's
/// `max_allowed_packet` bounds it.
fn min_json_size(row: &MySqlRow, i: usize) -> usize {
    let Ok(raw) = row.try_get_raw(i) else {
        return 0;
    };
    if raw.is_null() {
        return 0;
    }
    let shrinks_to = match raw.type_info().name() {
        "JSON" => 6,
        "BOOLEAN" | "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" | "FLOAT"
        | "DOUBLE" | "DECIMAL" | "DATETIME" | "TIMESTAMP" | "DATE" | "TIME" => return 0,
        t if t.ends_with("UNSIGNED") => return 0,
        _ => 1,
    };
    row.try_get_unchecked::<&[u8], _>(i)
        .map(|b| b.len() / shrinks_to)
        .unwrap_or(0)
}

fn decode(row: &MySqlRow, i: usize) -> Result<Value, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let ty = raw.type_info().name().to_string();
    let err = |e: sqlx::Error| format!("column {}: {e}", i + 1);
    Ok(match ty.as_str() {
        "BOOLEAN" => Value::Bool(row.try_get_unchecked::<bool, _>(i).map_err(err)?),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => {
            Value::Number(row.try_get_unchecked::<i64, _>(i).map_err(err)?.into())
        }
        t if t.ends_with("UNSIGNED") => {
            Value::Number(row.try_get_unchecked::<u64, _>(i).map_err(err)?.into())
        }
        "FLOAT" => float(row.try_get_unchecked::<f32, _>(i).map_err(err)? as f64),
        "DOUBLE" => float(row.try_get_unchecked::<f64, _>(i).map_err(err)?),
        "DECIMAL" => decimal(row.try_get_unchecked::<String, _>(i).map_err(err)?),
        "DATETIME" => match row.try_get_unchecked::<NaiveDateTime, _>(i) {
            Ok(t) => Value::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
            Err(_) => Value::String("0000-00-00T00:00:00".into()),
        },
        "TIMESTAMP" => match row.try_get_unchecked::<DateTime<Utc>, _>(i) {
            Ok(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Err(_) => Value::String("0000-00-00T00:00:00Z".into()),
        },
        "DATE" => match row.try_get_unchecked::<NaiveDate, _>(i) {
            Ok(d) => Value::String(d.format("%Y-%m-%d").to_string()),
            Err(_) => Value::String("0000-00-00".into()),
        },
        "TIME" => match row.try_get_unchecked::<NaiveTime, _>(i) {
            Ok(t) => Value::String(t.format("%H:%M:%S%.f").to_string()),
            Err(_) => match row.try_get_unchecked::<sqlx::mysql::types::MySqlTime, _>(i) {
                Ok(t) => Value::String(t.to_string()),
                Err(e) => return Err(err(e)),
            },
        },
        "JSON" => {
            let s = row.try_get_unchecked::<String, _>(i).map_err(err)?;
            serde_json::from_str(&s).unwrap_or(Value::String(s))
        }
        // A *_bin-collated TEXT (e.g. MariaDB's JSON, which is LONGTEXT
        // COLLATE utf8mb4_bin) carries the BINARY flag and looks like a BLOB:
        // valid UTF-8 without NUL comes back as text, anything else as base64.
        "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            let bytes = row.try_get_unchecked::<Vec<u8>, _>(i).map_err(err)?;
            match String::from_utf8(bytes) {
                Ok(s) if !s.contains('\0') => Value::String(s),
                Ok(s) => {
                    Value::String(base64::engine::general_purpose::STANDARD.encode(s.as_bytes()))
                }
                Err(e) => {
                    Value::String(base64::engine::general_purpose::STANDARD.encode(e.as_bytes()))
                }
            }
        }
        "BINARY" | "VARBINARY" | "BIT" | "GEOMETRY" => Value::String(
            base64::engine::general_purpose::STANDARD
                .encode(row.try_get_unchecked::<Vec<u8>, _>(i).map_err(err)?),
        ),
        _ => match row.try_get_unchecked::<String, _>(i) {
            Ok(s) => Value::String(s),
            Err(_) => Value::String(
                base64::engine::general_purpose::STANDARD
                    .encode(row.try_get_unchecked::<Vec<u8>, _>(i).map_err(err)?),
            ),
        },
    })
}

#[async_trait]
impl Engine for MySqlEngine {
    async fn query(
        &self,
        call: &QueryCall,
        caps: Caps,
        stop: &ExecLimits,
    ) -> Result<QueryOutcome, ExecuteError> {
        let limit = self.timeout * call.statements.len().max(1) as u32 + Duration::from_secs(2);
        // Statements that may leave session state (SET, USE, temporary tables,
        // user variables, functions Tollgate cannot see into) close their session.
        self.guarded(limit, call.touches_session(), stop, async |conn| {
            self.work(conn, call, caps, &stop.intent).await
        })
        .await
    }

    async fn schema(&self, call: &SchemaCall, stop: &ExecLimits) -> Result<Value, ExecuteError> {
        let schema = call.schema.clone().unwrap_or_else(|| self.database.clone());
        let table = call.table.clone();
        let limit = self.timeout + Duration::from_secs(2);
        let rows = self
            .guarded(limit, false, stop, async |conn| {
                sqlx::query(
                    "SELECT c.TABLE_SCHEMA, c.TABLE_NAME, t.TABLE_TYPE, c.COLUMN_NAME, c.COLUMN_TYPE, \
                     c.IS_NULLABLE = 'YES', c.COLUMN_KEY = 'PRI' \
                     FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
                     ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
                     WHERE c.TABLE_SCHEMA = ? AND (? IS NULL OR c.TABLE_NAME = ?) \
                     ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION",
                )
                .bind(&schema)
                .bind(&table)
                .bind(&table)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| self.map_err(e))
            })
            .await?;
        let mut tables: Vec<Value> = Vec::new();
        let mut key = (String::new(), String::new());
        for r in rows {
            let get = |i: usize| text_at(&r, i);
            let flag = |i: usize| {
                r.try_get_unchecked::<i64, _>(i)
                    .map(|v| v != 0)
                    .unwrap_or(false)
            };
            let (s, t) = (get(0), get(1));
            if (s.as_str(), t.as_str()) != (key.0.as_str(), key.1.as_str()) {
                key = (s.clone(), t.clone());
                let kind = if get(2).contains("VIEW") {
                    "view"
                } else {
                    "table"
                };
                tables.push(json!({"schema": s, "name": t, "kind": kind, "columns": []}));
            }
            if let Some(cols) = tables
                .last_mut()
                .and_then(|t| t.get_mut("columns"))
                .and_then(Value::as_array_mut)
            {
                cols.push(json!({"name": get(3), "type": get(4), "nullable": flag(5), "primary_key": flag(6)}));
            }
        }
        Ok(json!({ "tables": tables }))
    }

    async fn view_definitions(
        &self,
        stop: &ExecLimits,
    ) -> Result<Vec<ViewDefinition>, ExecuteError> {
        let limit = self.timeout + Duration::from_secs(2);
        // Fully qualified, as the server stores it; empty without SHOW VIEW
        // (the view is then opaque to lineage).
        let rows = self
            .guarded(limit, false, stop, async |conn| {
                sqlx::query(
                    "SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS \
                     WHERE TABLE_SCHEMA = ?",
                )
                .bind(&self.database)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| self.map_err(e))
            })
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let get = |i: usize| text_at(r, i);
                ViewDefinition {
                    schema: get(0),
                    name: get(1),
                    sql: get(2),
                }
            })
            .collect())
    }
}

/// Column `i` of a catalog row as text: information_schema columns come
/// back as strings or as binary strings depending on the server.
fn text_at(r: &sqlx::mysql::MySqlRow, i: usize) -> String {
    r.try_get_unchecked::<String, _>(i)
        .or_else(|_| {
            r.try_get_unchecked::<Vec<u8>, _>(i)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        })
        .unwrap_or_default()
}
