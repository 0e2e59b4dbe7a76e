//! SQLite execution through sqlx. Two lazy pools on the same file: one for
//! writing calls and one whose connections run `PRAGMA query_only = ON`, used
//! for read-only plans (the database itself refuses writes there). Each call
//! is one transaction (`BEGIN IMMEDIATE` when writing). The statement timeout
//! really interrupts: a progress handler on the connection's raw handle
//! aborts the running statement once the deadline passes.
//!
//! Memory: SQLite runs in this process, so a value is bounded where SQLite
//! builds it: during a `sql_query` call the connection's `SQLITE_LIMIT_LENGTH`
//! is the call's byte cap plus [`LENGTH_MARGIN`] (see [`length_limit`]), and a
//! longer string or blob (`printf('%.*c', 500000000, 'x')`, a huge stored
//! value read) fails with "string or blob too big" before it is allocated;
//! a row whose raw text and blob bytes cannot fit is not decoded.
//!
//! Field origins: sqlx reports `sqlite3_column_table_name` /
//! `sqlite3_column_origin_name` as `Column::origin()` (SQLite must be built
//! with column metadata, which libsqlite3-sys' bundled build is).
//! Column types: sqlx's reading of the declared type (`TEXT`, `INTEGER`,
//! `REAL`, `BLOB`, `BOOLEAN`, `DATE`, `TIME`, `DATETIME`); a declared type
//! sqlx does not know (`NUMERIC`, `DECIMAL(10,2)`) as declared, upper-cased
//! (`sqlite3_column_decltype`); a computed column (no declared type) gets the
//! storage class of its first non-null value read (`INTEGER`, `REAL`,
//! `TEXT`, `BLOB`), `NULL` only when every value read is null. Values are
//! typed by their storage class.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use gateway_core::connector::{ExecLimits, ExecuteError, IntentGate};
use serde_json::{Value, json};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{AssertSqlSafe, Column, Executor, Row, SqlSafeStr, Statement, TypeInfo, ValueRef};

use crate::affected::Tally;
use crate::config::{CONNECT_TIMEOUT, SqlConfig};
use crate::engine::{Engine, ViewDefinition};
use crate::prepared::{QueryCall, SchemaCall};
use crate::result::{Caps, ColumnDesc, QueryOutcome, RowSet};
use crate::sqlx_common::{bind_json, fill, map_common};

/// Bytes above a call's byte cap that a string or blob may still take inside
/// SQLite (the limit also bounds intermediate values and rows SQLite builds).
pub const LENGTH_MARGIN: usize = 64 * 1024;

/// `SQLITE_LIMIT_LENGTH` for a call under this byte cap: a string or blob
/// longer than the cap cannot be in the result (its JSON is at least as
/// long), so SQLite may refuse to build it. `usize::MAX` (internal reads)
/// gives SQLite's own maximum.
pub fn length_limit(max_bytes: usize) -> i32 {
    i32::try_from(max_bytes.saturating_add(LENGTH_MARGIN)).unwrap_or(i32::MAX)
}

/// Set the connection's `SQLITE_LIMIT_LENGTH` (SQLite lowers a value above
/// its compiled maximum to that maximum).
fn set_length_limit(handle: &mut sqlx::sqlite::LockedSqliteHandle<'_>, limit: i32) {
    // SAFETY: the handle is locked for us and open; sqlite3_limit only
    // changes a field of the connection.
    unsafe {
        libsqlite3_sys::sqlite3_limit(
            handle.as_raw_handle().as_ptr(),
            libsqlite3_sys::SQLITE_LIMIT_LENGTH,
            limit,
        )
    };
}

/// A SQLite connection's engine.
pub struct SqliteEngine {
    options: SqliteConnectOptions,
    timeout: Duration,
    pool_size: u32,
    rw: OnceLock<SqlitePool>,
    ro: OnceLock<SqlitePool>,
}

impl SqliteEngine {
    /// Prepare the pools (created and connected on first use).
    pub fn new(config: &SqlConfig, path: &Path) -> Result<Self, String> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(config.create_if_missing)
            .busy_timeout(CONNECT_TIMEOUT)
            .foreign_keys(true);
        Ok(SqliteEngine {
            options,
            timeout: config.statement_timeout,
            pool_size: config.pool_size as u32,
            rw: OnceLock::new(),
            ro: OnceLock::new(),
        })
    }

    fn pool(&self, read_only: bool) -> &SqlitePool {
        let (cell, options) = if read_only {
            // Opened read-only (SQLITE_OPEN_READONLY): no PRAGMA an earlier
            // statement ran can make these connections write.
            (
                &self.ro,
                self.options
                    .clone()
                    .read_only(true)
                    .create_if_missing(false)
                    .pragma("query_only", "ON"),
            )
        } else {
            (&self.rw, self.options.clone())
        };
        cell.get_or_init(|| {
            SqlitePoolOptions::new()
                .max_connections(self.pool_size)
                .acquire_timeout(CONNECT_TIMEOUT)
                .connect_lazy_with(options)
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
        let code = db.code().map(|c| c.to_string()).unwrap_or_default();
        let primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or(-1);
        match primary {
            9 => ExecuteError::Timeout(self.timeout.as_millis() as u64),
            // SQLITE_TOOBIG: over the length limit set from the byte cap.
            18 => ExecuteError::Target(format!(
                "{} (sqlite code {code}): SQLite refused a string or blob longer than \
                 this call's byte cap (the connection's max_bytes or the gateway's \
                 max_result_bytes) before building it; compute a shorter value, or raise \
                 the cap to read a stored value this long",
                db.message()
            )),
            14 | 26 => {
                ExecuteError::Unavailable(format!("cannot open the database: {}", db.message()))
            }
            _ => ExecuteError::Target(format!("{} (sqlite code {code})", db.message())),
        }
    }

    async fn work(
        &self,
        conn: &mut SqliteConnection,
        call: &QueryCall,
        caps: Caps,
        intent: &IntentGate,
    ) -> Result<QueryOutcome, ExecuteError> {
        let begin = if call.read_only {
            "BEGIN"
        } else {
            "BEGIN IMMEDIATE"
        };
        conn.execute(sqlx::raw_sql(begin))
            .await
            .map_err(|e| self.map_err(e))?;
        let mut outcome = QueryOutcome {
            rows: None,
            affected: 0,
        };
        let mut tally = Tally::new(call, false)?;
        let changes_before = self.total_changes(conn, &tally).await?;
        for (index, st) in call.statements.iter().enumerate() {
            let decltypes = one_statement(conn, &st.sql).await?;
            let stmt = conn
                .prepare(AssertSqlSafe(st.sql.clone()).into_sql_str())
                .await
                .map_err(|e| self.map_err(e))?;
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
            let declared: Vec<String> = stmt
                .columns()
                .iter()
                .enumerate()
                .map(|(i, c)| column_type(c.type_info(), decltypes.get(i)))
                .collect();
            // Computed columns: typed by the first non-null value read.
            let seen: Vec<OnceLock<String>> = declared.iter().map(|_| Default::default()).collect();
            let columns = stmt
                .columns()
                .iter()
                .zip(&declared)
                .map(|(c, t)| ColumnDesc {
                    name: c.name().to_string(),
                    type_name: t.clone(),
                })
                .collect();
            let mut set = RowSet::new(columns, caps);
            set.statement = index;
            set.origins = stmt
                .columns()
                .iter()
                .map(|c| {
                    c.origin().table_column().map(|t| {
                        if t.table.contains('.') {
                            format!("{}.{}", t.table, t.name)
                        } else {
                            format!("main.{}.{}", t.table, t.name)
                        }
                    })
                })
                .collect();
            fill(
                q.fetch(&mut *conn),
                &mut set,
                min_json_size,
                |row, i| decode(row, i, &declared[i], &seen[i]),
                |e| self.map_err(e),
            )
            .await?;
            for (col, seen) in set.columns.iter_mut().zip(&seen) {
                if col.type_name == "NULL"
                    && let Some(storage) = seen.get()
                {
                    col.type_name = storage.clone();
                }
            }
            outcome.affected = set.rows.len() as u64;
            tally.returned(&st.kind, &set);
            outcome.rows = Some(set);
        }
        // Blast-radius guard: over the cap, the error path rolls back.
        let changes_after = self.total_changes(conn, &tally).await?;
        tally.observed(changes_after.saturating_sub(changes_before));
        tally.check()?;
        // Write-ahead audit: nothing becomes permanent before the call's
        // intent is durable; if it cannot be recorded, the error path rolls back.
        intent.durable().await?;
        conn.execute(sqlx::raw_sql("COMMIT"))
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(outcome)
    }

    /// Rows changed on this connection since it opened, triggers included
    /// (`total_changes()`), when the call has a cap on rows changed; 0 otherwise.
    async fn total_changes(
        &self,
        conn: &mut SqliteConnection,
        tally: &Tally,
    ) -> Result<u64, ExecuteError> {
        if !tally.active() {
            return Ok(0);
        }
        let n: i64 = sqlx::query_scalar("SELECT total_changes()")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(n.max(0) as u64)
    }

    /// Run `f` on a pooled connection. `changes_session`: the call ran
    /// statements (ATTACH, PRAGMA...) whose effect outlives the transaction,
    /// so the connection is closed instead of being handed to the next call.
    /// `max_bytes`: the call's byte cap, which sets the connection's length
    /// limit while `f` runs (see [`length_limit`]).
    async fn guarded<T>(
        &self,
        read_only: bool,
        changes_session: bool,
        max_bytes: usize,
        stop: &ExecLimits,
        f: impl for<'c> AsyncFnOnce(&'c mut SqliteConnection) -> Result<T, ExecuteError>,
    ) -> Result<T, ExecuteError> {
        stop.check()?;
        let mut conn = self
            .pool(read_only)
            .acquire()
            .await
            .map_err(|e| self.map_err(e))?;
        if changes_session {
            conn.close_on_drop();
        }
        // The progress handler interrupts the running statement inside
        // SQLite when the time is up or the caller cancelled.
        let timeout = stop.timeout_within(self.timeout);
        let deadline = Instant::now() + timeout;
        let cancel = stop.cancel.clone();
        {
            let mut handle = conn.lock_handle().await.map_err(|e| self.map_err(e))?;
            handle.set_progress_handler(1000, move || {
                Instant::now() < deadline && !cancel.is_cancelled()
            });
            set_length_limit(&mut handle, length_limit(max_bytes));
        }
        // Backstop only: the progress handler is what interrupts SQLite.
        let limit = timeout + CONNECT_TIMEOUT;
        let result = match tokio::time::timeout(limit, f(&mut conn)).await {
            Ok(r) => r,
            Err(_) => {
                conn.close_on_drop();
                return Err(ExecuteError::Timeout(timeout.as_millis() as u64));
            }
        };
        // An interrupt the caller caused is a cancellation, not a timeout.
        let result = match result {
            Err(ExecuteError::Timeout(_)) if stop.cancel.is_cancelled() => {
                Err(ExecuteError::Cancelled)
            }
            Err(ExecuteError::Timeout(_)) => Err(ExecuteError::Timeout(timeout.as_millis() as u64)),
            other => other,
        };
        if result.is_err() && conn.execute(sqlx::raw_sql("ROLLBACK")).await.is_err() {
            // "no transaction is active" is fine; anything else: do not reuse.
            if conn.execute(sqlx::raw_sql("SELECT 1")).await.is_err() {
                conn.close_on_drop();
            }
        }
        let removed = match conn.lock_handle().await {
            Ok(mut h) => {
                h.remove_progress_handler();
                set_length_limit(&mut h, i32::MAX);
                true
            }
            Err(_) => false,
        };
        if !removed {
            conn.close_on_drop();
        }
        result
    }
}

/// The type reported for one result column: sqlx's name for the declared
/// type when it knows it; otherwise the declared type as written,
/// upper-cased; `NULL` (filled in from the values later) when there is none.
fn column_type(sqlx_type: &sqlx::sqlite::SqliteTypeInfo, decl: Option<&Option<String>>) -> String {
    let name = sqlx_type.name();
    if name != "NULL" {
        return name.to_string();
    }
    match decl {
        Some(Some(d)) if !d.trim().is_empty() => d.trim().to_ascii_uppercase(),
        _ => "NULL".to_string(),
    }
}

/// SQLite's own parser must see exactly one statement in `sql`: sqlx runs
/// every statement of a text, so a text that a printer or parser got wrong
/// could otherwise run more than was analysed. Prepares (without running)
/// each statement of the text on the connection's handle and counts them.
/// Returns the statement's declared column types (`None` for expressions).
async fn one_statement(
    conn: &mut SqliteConnection,
    sql: &str,
) -> Result<Vec<Option<String>>, ExecuteError> {
    let count = {
        let mut handle = conn
            .lock_handle()
            .await
            .map_err(|e| ExecuteError::Other(format!("sqlite handle: {e}")))?;
        count_statements(handle.as_raw_handle().as_ptr(), sql)
    };
    match count {
        Ok((1, decltypes)) => Ok(decltypes),
        Ok((n, _)) => Err(ExecuteError::Other(format!(
            "refused: SQLite reads {n} statements in the text Tollgate analysed as one; nothing ran"
        ))),
        Err(message) => Err(ExecuteError::Target(message)),
    }
}

/// Statements SQLite's parser finds in `sql` (comments and whitespace alone
/// are none), with the declared column types of the first one.
/// `Err`: SQLite's message for a text it cannot prepare.
type Inspected = (usize, Vec<Option<String>>);
fn count_statements(db: *mut libsqlite3_sys::sqlite3, sql: &str) -> Result<Inspected, String> {
    use libsqlite3_sys as ffi;
    let bytes = sql.as_bytes();
    let mut rest: &[u8] = bytes;
    let mut count = 0;
    let mut decltypes = Vec::new();
    while !rest.is_empty() {
        let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
        let mut tail: *const std::os::raw::c_char = std::ptr::null();
        let len = i32::try_from(rest.len()).map_err(|_| "statement too long".to_string())?;
        // SAFETY: `db` is the connection's open handle, locked by the caller
        // for the duration; `rest` is valid for `len` bytes and SQLite reads no
        // further; the statement is finalized before the next iteration.
        let rc =
            unsafe { ffi::sqlite3_prepare_v2(db, rest.as_ptr().cast(), len, &mut stmt, &mut tail) };
        if rc != ffi::SQLITE_OK {
            // SAFETY: `db` is open; the message is copied before anything else runs on it.
            let message = unsafe { std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(db)) }
                .to_string_lossy()
                .into_owned();
            return Err(format!("{message} (sqlite code {rc})"));
        }
        if !stmt.is_null() {
            count += 1;
            if count == 1 {
                // SAFETY: `stmt` is a live prepared statement; each
                // decltype pointer is valid until it is finalized and is
                // copied out before that.
                let n = unsafe { ffi::sqlite3_column_count(stmt) };
                for i in 0..n {
                    let p = unsafe { ffi::sqlite3_column_decltype(stmt, i) };
                    decltypes.push((!p.is_null()).then(|| {
                        unsafe { std::ffi::CStr::from_ptr(p) }
                            .to_string_lossy()
                            .into_owned()
                    }));
                }
            }
            // SAFETY: `stmt` came from sqlite3_prepare_v2 and is finalized once.
            unsafe { ffi::sqlite3_finalize(stmt) };
        }
        if tail.is_null() {
            break;
        }
        let used = (tail as usize).saturating_sub(rest.as_ptr() as usize);
        if used == 0 || used > rest.len() {
            break;
        }
        rest = &rest[used..];
    }
    Ok((count, decltypes))
}

/// A lower bound of a value's JSON size from its raw bytes: text and blobs
/// come back at least as long as they are (blobs as base64), other values
/// are small.
fn min_json_size(row: &SqliteRow, i: usize) -> usize {
    let Ok(raw) = row.try_get_raw(i) else {
        return 0;
    };
    if raw.is_null() || !matches!(raw.type_info().name(), "TEXT" | "BLOB") {
        return 0;
    }
    row.try_get_unchecked::<&[u8], _>(i)
        .map(<[u8]>::len)
        .unwrap_or(0)
}

/// One value by its storage class; `seen` keeps the first non-null value's
/// storage class (the type of a computed column).
fn decode(
    row: &SqliteRow,
    i: usize,
    declared: &str,
    seen: &OnceLock<String>,
) -> Result<Value, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let storage = raw.type_info().name().to_string();
    seen.get_or_init(|| storage.clone());
    let err = |e: sqlx::Error| format!("column {}: {e}", i + 1);
    Ok(match storage.as_str() {
        "INTEGER" | "BOOLEAN" => {
            let v = row.try_get_unchecked::<i64, _>(i).map_err(err)?;
            if declared == "BOOLEAN" {
                Value::Bool(v != 0)
            } else {
                Value::Number(v.into())
            }
        }
        "REAL" => {
            let f = row.try_get_unchecked::<f64, _>(i).map_err(err)?;
            if f.is_finite() {
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            } else {
                Value::String(if f.is_nan() {
                    "NaN".into()
                } else if f > 0.0 {
                    "Infinity".into()
                } else {
                    "-Infinity".into()
                })
            }
        }
        "BLOB" => Value::String(
            base64::engine::general_purpose::STANDARD
                .encode(row.try_get_unchecked::<Vec<u8>, _>(i).map_err(err)?),
        ),
        _ => Value::String(row.try_get_unchecked::<String, _>(i).map_err(err)?),
    })
}

#[async_trait]
impl Engine for SqliteEngine {
    async fn query(
        &self,
        call: &QueryCall,
        caps: Caps,
        stop: &ExecLimits,
    ) -> Result<QueryOutcome, ExecuteError> {
        self.guarded(
            call.read_only,
            call.touches_session(),
            caps.max_bytes,
            stop,
            async |conn| self.work(conn, call, caps, &stop.intent).await,
        )
        .await
    }

    async fn schema(&self, call: &SchemaCall, stop: &ExecLimits) -> Result<Value, ExecuteError> {
        if call.schema.as_deref().is_some_and(|s| s != "main") {
            return Ok(json!({"tables": []}));
        }
        let table = call.table.clone();
        let rows = self
            .guarded(true, false, usize::MAX, stop, async |conn| {
                sqlx::query(
                    "SELECT m.name, m.type, p.name, p.type, p.\"notnull\", p.pk \
                     FROM sqlite_schema m JOIN pragma_table_info(m.name) p \
                     WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                     AND (?1 IS NULL OR m.name = ?1) ORDER BY m.name, p.cid",
                )
                .bind(&table)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| self.map_err(e))
            })
            .await?;
        let mut tables: Vec<Value> = Vec::new();
        let mut current = String::new();
        for r in rows {
            let name: String = r.try_get(0).unwrap_or_default();
            if name != current {
                current = name.clone();
                let kind: String = r.try_get(1).unwrap_or_default();
                tables.push(json!({"schema": "main", "name": name, "kind": kind, "columns": []}));
            }
            if let Some(cols) = tables
                .last_mut()
                .and_then(|t| t.get_mut("columns"))
                .and_then(Value::as_array_mut)
            {
                let pk: i64 = r.try_get(5).unwrap_or(0);
                cols.push(json!({
                    "name": r.try_get::<String, _>(2).unwrap_or_default(),
                    "type": r.try_get::<String, _>(3).unwrap_or_default(),
                    "nullable": r.try_get::<i64, _>(4).unwrap_or(0) == 0 && pk == 0,
                    "primary_key": pk > 0,
                }));
            }
        }
        Ok(json!({ "tables": tables }))
    }

    async fn view_definitions(
        &self,
        stop: &ExecLimits,
    ) -> Result<Vec<ViewDefinition>, ExecuteError> {
        let rows = self
            .guarded(true, false, usize::MAX, stop, async |conn| {
                sqlx::query(
                    "SELECT name, sql FROM sqlite_schema WHERE type = 'view' AND sql IS NOT NULL",
                )
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| self.map_err(e))
            })
            .await?;
        Ok(rows
            .iter()
            .map(|r| ViewDefinition {
                schema: "main".into(),
                name: r.try_get(0).unwrap_or_default(),
                sql: r.try_get(1).unwrap_or_default(),
            })
            .collect())
    }
}
