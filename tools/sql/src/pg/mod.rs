//! PostgreSQL execution: a lazy deadpool of tokio-postgres connections (TLS
//! per `sslmode`), one transaction per call (`READ ONLY` for read-only plans,
//! `SET LOCAL statement_timeout`), prepared statements cached per session (at
//! most [`MAX_PREPARED_PER_SESSION`]), bound parameters.
//!
//! Two paths: a read-only one-statement call runs in one round trip (see
//! `read_in_one_round_trip`: the cap is applied while reading and a result far
//! over it closes the session); everything else fetches through a portal in
//! batches so at most the row cap (+1) crosses the wire.
//!
//! Every session reads through a [`wire_guard::FrameGuard`]: a backend
//! message longer than [`wire_limit`] of the connection's `max_bytes` is
//! refused as it arrives, before the driver buffers it (see
//! [`Drained::WireCapped`]).
//!
//! Field origins: the RowDescription of each result column carries the table
//! OID and column number; names are resolved once through `pg_catalog` and
//! cached (cleared after any writing call, since DDL can rename).

mod connect;
mod params;
mod tls;
pub mod values;
pub mod wire_guard;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime,
};
use futures::{TryStreamExt, pin_mut};
use gateway_core::connector::{ExecLimits, ExecuteError, IntentGate};
use gateway_core::secret::Secret;
use serde_json::{Value, json};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};

pub use tls::TlsMode;

use crate::affected::Tally;
use crate::analysis::catalog::NameCatalog;
use crate::config::{CONNECT_TIMEOUT, SqlConfig};
use crate::engine::{Engine, ViewDefinition, query_pairs};
use crate::prepared::{QueryCall, SchemaCall};
use crate::result::{Caps, ColumnDesc, QueryOutcome, RowSet};

/// How long a statement cancelled on the server may take to end before its
/// session is dropped instead of rolled back and reused.
const CANCEL_GRACE: Duration = Duration::from_secs(5);
/// A statement still running this long after a cancel request gets another.
const CANCEL_RESEND: Duration = Duration::from_millis(300);

/// Rows fetched per portal round trip at most: the default cap + 1, so a
/// read under the default cap is always one Execute (which lets a read-only
/// call pipeline its COMMIT behind it).
const FETCH_BATCH: u64 = crate::config::DEFAULT_MAX_ROWS + 1;

/// Prepared statements a pooled session keeps before it starts over.
pub const MAX_PREPARED_PER_SESSION: usize = 256;

/// Rows past a cap that a one-round-trip read still receives (and drops)
/// before it closes the connection to stop the rest.
const DISCARD_ROWS_BEFORE_CLOSE: usize = 256;

/// The largest backend message a session of a connection whose calls may
/// return `max_bytes` accepts: the cap plus 64 KiB (framing, a row's
/// fixed-size values). A row's raw bytes are at least its JSON for text,
/// bytea and unknown types; JSON text with many escapes or much whitespace
/// and numeric arrays can be shorter as JSON than on the wire, so such a row
/// over the cap on the wire is cut (`truncated`) even if its JSON would have
/// fit: memory stays bounded by the cap, not by six times it.
pub fn wire_limit(max_bytes: usize) -> usize {
    max_bytes.saturating_add(64 * 1024)
}

/// Startup options of every session: the pinned search path. Tollgate
/// qualifies every table and function it executes, so this only serves what
/// agents cannot name (operators, types) and the bodies of functions,
/// triggers and views, which keep resolving in `public` as they were written
/// to; `pg_temp` goes last so no temporary object shadows them, and the
/// `"$user"` schema of a server's default path is never searched.
/// `standard_conforming_strings` is pinned on: with it off, `'a\'` would end
/// somewhere else for the server than for the analysis.
const SESSION_OPTIONS: &str =
    "-c search_path=pg_catalog,public,pg_temp -c standard_conforming_strings=on";

/// Puts a pooled session back as it was opened: settings (the search path
/// included) back to the session's start values, role and session
/// authorization reset, cursors closed, LISTENs dropped, session advisory
/// locks released, temporary tables and sequence state discarded. Prepared
/// statements are kept (the client's cache names them).
const RESET_SESSION: &str = "CLOSE ALL; RESET ALL; RESET SESSION AUTHORIZATION; RESET ROLE; \
     UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// Names of a table's columns, by attribute number.
#[derive(Debug)]
struct TableNames {
    qualified: String,
    columns: HashMap<i16, String>,
}

/// How a read of rows ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// The result (or the batch asked for) ended.
    End,
    /// A row or byte cap was reached; the rest of the result may still be
    /// on its way.
    Capped,
    /// A message over the session's wire limit was refused as it arrived:
    /// the result is cut there and the session is closed (its transaction
    /// rolls back on the server).
    WireCapped,
}

/// The error a [`wire_guard::FrameGuard`] reports in place of a message over
/// its limit.
fn is_wire_capped(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| db.code().code() == wire_guard::WIRE_CAP_SQLSTATE)
}

/// Close a pooled session instead of returning it to the pool.
fn close(client: deadpool_postgres::Object) {
    drop(deadpool_postgres::Object::take(client));
}

/// A statement after Bind.
enum Bound {
    /// Ran to completion (no result columns): rows affected.
    Done(u64),
    /// Rows to fetch from the portal.
    Rows {
        portal: tokio_postgres::Portal,
        types: Vec<Type>,
        set: RowSet,
    },
}

/// A PostgreSQL connection's engine.
pub struct PgEngine {
    pool: Pool,
    /// The connection's settings without Tollgate's pinned path: a session
    /// opened with them sees the search path the database gives this role.
    unpinned: tokio_postgres::Config,
    /// The pooled sessions' settings (cancel requests go where they went).
    pinned: tokio_postgres::Config,
    connect: connect::GuardedConnect,
    timeout: Duration,
    catalog: Mutex<HashMap<u32, Arc<TableNames>>>,
}

impl PgEngine {
    /// Build the (lazy) pool. Does not connect.
    pub fn new(config: &SqlConfig, url: &Secret) -> Result<Self, String> {
        let raw = url.expose();
        let (base, query) = raw.split_once('?').unwrap_or((raw, ""));
        let mut mode = TlsMode::Prefer;
        let mut root_cert = None;
        let mut kept = Vec::new();
        for (k, v) in query_pairs(raw) {
            match k.as_str() {
                "sslmode" => mode = TlsMode::parse(&v)?,
                "sslrootcert" => root_cert = Some(crate::engine::percent_decode(&v)),
                _ => kept.push(format!("{k}={v}")),
            }
        }
        let _ = query;
        let cleaned = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut pg = tokio_postgres::Config::from_str(&cleaned).map_err(|e| {
            format!(
                "invalid postgres url: {}",
                crate::engine::Redactor::for_url(raw).clean(e.to_string())
            )
        })?;
        if pg.get_target_session_attrs() != tokio_postgres::config::TargetSessionAttrs::Any {
            // Sessions are opened by `connect::GuardedConnect`, which does
            // not probe for a writable server.
            return Err(
                "target_session_attrs is not supported: name the server to use \
                        (the primary's host) in the URL"
                    .into(),
            );
        }
        pg.ssl_mode(mode.ssl_mode());
        pg.connect_timeout(CONNECT_TIMEOUT);
        pg.application_name("tollgate");
        let tls = tls::connector(mode, root_cert.as_deref())?;
        let unpinned = pg.clone();
        // Every name Tollgate executes is schema-qualified as policy saw it;
        // pooled sessions pin the path for the rest (RESET ALL comes back to it).
        pg.options(SESSION_OPTIONS);
        let connect = connect::GuardedConnect {
            tls,
            limit: wire_limit(config.max_bytes),
        };
        let manager = Manager::from_connect(
            pg.clone(),
            connect.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(config.statement_timeout + CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| format!("pool: {e}"))?;
        Ok(PgEngine {
            pool,
            unpinned,
            pinned: pg,
            connect,
            timeout: config.statement_timeout,
            catalog: Mutex::new(HashMap::new()),
        })
    }

    fn timeout_ms(&self) -> u64 {
        self.timeout.as_millis() as u64
    }

    fn map_err(&self, e: tokio_postgres::Error) -> ExecuteError {
        map_pg_error(e, self.timeout_ms())
    }

    /// Open the call's transaction (READ ONLY when asked) with the
    /// connection's statement timeout.
    async fn begin<'c>(
        &self,
        client: &'c mut deadpool_postgres::Object,
        read_only: bool,
    ) -> Result<deadpool_postgres::Transaction<'c>, ExecuteError> {
        let txn = client
            .build_transaction()
            .read_only(read_only)
            .start()
            .await
            .map_err(|e| self.map_err(e))?;
        txn.batch_execute(&format!(
            "SET LOCAL statement_timeout = {}",
            self.timeout_ms().max(1)
        ))
        .await
        .map_err(|e| self.map_err(e))?;
        Ok(txn)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ExecuteError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => self.map_err(e),
            PoolError::Timeout(_) => {
                ExecuteError::Unavailable("timed out connecting to the database".into())
            }
            other => ExecuteError::Unavailable(format!("cannot get a connection: {other}")),
        })
    }

    /// `schema.table.column` for each column, from the cache or one catalog query.
    async fn origins<C: GenericClient + Sync>(
        &self,
        txn: &C,
        columns: &[tokio_postgres::Column],
    ) -> Result<Vec<Option<String>>, ExecuteError> {
        let wanted: Vec<u32> = {
            let cache = self
                .catalog
                .lock()
                .map_err(|_| ExecuteError::Other("catalog cache poisoned".into()))?;
            let mut w: Vec<u32> = columns
                .iter()
                .filter_map(|c| c.table_oid())
                .filter(|oid| *oid != 0 && !cache.contains_key(oid))
                .collect();
            w.sort_unstable();
            w.dedup();
            w
        };
        if !wanted.is_empty() {
            let stmt = txn
                .prepare_cached(
                    "SELECT c.oid, n.nspname::text, c.relname::text, a.attnum, a.attname::text \
                     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 \
                     WHERE c.oid = ANY($1)",
                )
                .await
                .map_err(|e| self.map_err(e))?;
            let rows = txn
                .query(&stmt, &[&wanted])
                .await
                .map_err(|e| self.map_err(e))?;
            let mut found: HashMap<u32, TableNames> = HashMap::new();
            for r in rows {
                let oid: u32 = r.get(0);
                let entry = found.entry(oid).or_insert_with(|| TableNames {
                    qualified: format!("{}.{}", r.get::<_, String>(1), r.get::<_, String>(2)),
                    columns: HashMap::new(),
                });
                entry.columns.insert(r.get(3), r.get(4));
            }
            let mut cache = self
                .catalog
                .lock()
                .map_err(|_| ExecuteError::Other("catalog cache poisoned".into()))?;
            for (oid, names) in found {
                cache.insert(oid, Arc::new(names));
            }
        }
        let cache = self
            .catalog
            .lock()
            .map_err(|_| ExecuteError::Other("catalog cache poisoned".into()))?;
        Ok(columns
            .iter()
            .map(|c| {
                let (oid, col) = (c.table_oid()?, c.column_id()?);
                let t = cache.get(&oid)?;
                Some(format!("{}.{}", t.qualified, t.columns.get(&col)?))
            })
            .collect())
    }

    /// Prepare (cached) and bind one statement: DML/DDL runs to completion,
    /// a row-returning statement comes back as a portal to fetch from.
    async fn bind_statement(
        &self,
        txn: &deadpool_postgres::Transaction<'_>,
        sql: &str,
        call: &QueryCall,
        caps: Caps,
    ) -> Result<Bound, ExecuteError> {
        let stmt = txn.prepare_cached(sql).await.map_err(|e| self.map_err(e))?;
        let params = params::convert(stmt.params(), &call.params).map_err(ExecuteError::Target)?;
        let bound = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync));
        if stmt.columns().is_empty() {
            let affected = txn
                .execute_raw(&stmt, bound)
                .await
                .map_err(|e| self.map_err(e))?;
            return Ok(Bound::Done(affected));
        }
        let mut set = RowSet::new(column_descs(stmt.columns()), caps);
        set.origins = self.origins(txn, stmt.columns()).await?;
        let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
        let portal = txn
            .bind_raw(&stmt, bound)
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(Bound::Rows { portal, types, set })
    }

    /// Read one portal batch into `set`. Returns (rows received, how the
    /// read ended). A row that cannot fit by the lower bound of its JSON size
    /// ([`values::min_json_size`] of its raw bytes) stops the read before it
    /// is decoded; the DataRow message itself has been received whole by
    /// then (tokio-postgres buffers one message at a time) unless it was over
    /// the session's [`wire_limit`], which the guard refuses as it arrives.
    async fn drain(
        &self,
        mut stream: std::pin::Pin<&mut tokio_postgres::RowStream>,
        types: &[Type],
        set: &mut RowSet,
    ) -> Result<(u64, Drained), ExecuteError> {
        let mut got = 0u64;
        loop {
            let row = match stream.try_next().await {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) if is_wire_capped(&e) => {
                    set.truncated = true;
                    return Ok((got, Drained::WireCapped));
                }
                Err(e) => return Err(self.map_err(e)),
            };
            got += 1;
            let raws = types
                .iter()
                .enumerate()
                .map(|(i, _)| row.try_get::<_, values::RawValue<'_>>(i).map(|r| r.0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.map_err(e))?;
            // As `json_size_row` counts a row: brackets and a comma per value.
            let at_least = types.iter().zip(&raws).fold(2usize, |n, (ty, raw)| {
                let value = raw.map_or(0, |bytes| values::min_json_size(ty, bytes));
                n.saturating_add(value).saturating_add(1)
            });
            if !set.fits_at_least(at_least) {
                return Ok((got, Drained::Capped));
            }
            let mut out = Vec::with_capacity(types.len());
            for (i, (ty, raw)) in types.iter().zip(raws).enumerate() {
                out.push(match raw {
                    None => Value::Null,
                    Some(bytes) => values::decode(ty, bytes).map_err(|m| {
                        ExecuteError::Other(format!("cannot decode column {}: {m}", i + 1))
                    })?,
                });
            }
            if !set.push(out) {
                return Ok((got, Drained::Capped));
            }
        }
        Ok((got, Drained::End))
    }

    /// Run a call. Read-only one-statement calls (not SHOW) go to
    /// [`PgEngine::read_in_one_round_trip`]. The portal path: BEGIN; SET LOCAL
    /// with Bind (pipelined); Execute with COMMIT (pipelined for read-only
    /// plans whose row cap fits one batch). Writing plans commit only after
    /// every row was read.
    async fn run(
        &self,
        mut client: deadpool_postgres::Object,
        call: &QueryCall,
        caps: Caps,
        intent: &IntentGate,
    ) -> Result<QueryOutcome, ExecuteError> {
        if client.statement_cache.size() >= MAX_PREPARED_PER_SESSION {
            // Agents write new SQL all the time: without a bound every pooled
            // session would keep every statement ever prepared, here and on the
            // server (dropping them sends Close).
            client.statement_cache.clear();
        }
        if let [only] = call.statements.as_slice()
            && call.read_only
            && !only.touches_session
        {
            let stmt = client
                .prepare_cached(&only.sql)
                .await
                .map_err(|e| self.map_err(e))?;
            if !stmt.columns().is_empty() {
                return self.read_in_one_round_trip(client, &stmt, call, caps).await;
            }
        }
        let txn = client
            .build_transaction()
            .read_only(call.read_only)
            .start()
            .await
            .map_err(|e| self.map_err(e))?;
        let timeout_sql = format!("SET LOCAL statement_timeout = {}", self.timeout_ms().max(1));
        let mut tally = Tally::new(call, false)?;
        let changed_before = self.changed_rows(&txn, &tally).await?;
        // The SET LOCAL goes out first (a future sends its message on its
        // first poll, and join! polls in order); the first statement's
        // Parse/Bind queue behind it on the same connection, so the server
        // applies the timeout before it runs anything of the call. If the SET
        // failed, the transaction is aborted and the statement fails too; its
        // error is the one reported.
        let mut first = match call.statements.first() {
            Some(st) => {
                let (t, b) = futures::join!(
                    txn.batch_execute(&timeout_sql),
                    self.bind_statement(&txn, &st.sql, call, caps)
                );
                t.map_err(|e| self.map_err(e))?;
                Some(b?)
            }
            None => {
                txn.batch_execute(&timeout_sql)
                    .await
                    .map_err(|e| self.map_err(e))?;
                None
            }
        };
        let mut outcome = QueryOutcome {
            rows: None,
            affected: 0,
        };
        let count = call.statements.len();
        for (i, st) in call.statements.iter().enumerate() {
            let bound = match first.take() {
                Some(b) => b,
                None => self.bind_statement(&txn, &st.sql, call, caps).await?,
            };
            let (portal, types, mut set) = match bound {
                Bound::Done(affected) => {
                    outcome.affected = affected;
                    tally.statement(&st.kind, affected);
                    continue;
                }
                Bound::Rows { portal, types, set } => (portal, types, set),
            };
            set.statement = i;
            let first_want = caps.max_rows.saturating_add(1).min(FETCH_BATCH);
            if call.read_only && i + 1 == count && first_want == caps.max_rows.saturating_add(1) {
                // One Execute of max_rows + 1 rows always ends the read (fewer
                // rows: done; max_rows + 1: the cap stops it), so COMMIT can
                // follow it on the wire instead of after its reply. Only for
                // read-only plans: there is nothing a commit could make
                // permanent that a failed read would have rolled back.
                let stream = txn
                    .query_portal_raw(&portal, first_want as i32)
                    .await
                    .map_err(|e| self.map_err(e))?;
                drop(portal);
                pin_mut!(stream);
                let (read, committed) =
                    futures::join!(self.drain(stream, &types, &mut set), txn.commit());
                if read?.1 == Drained::WireCapped {
                    // Read-only and the last statement: the rows up to the
                    // cut are the answer; the session is gone.
                    outcome.affected = set.rows.len() as u64;
                    outcome.rows = Some(set);
                    close(client);
                    return Ok(outcome);
                }
                committed.map_err(|e| self.map_err(e))?;
                outcome.affected = set.rows.len() as u64;
                outcome.rows = Some(set);
                self.after_commit(client, call).await;
                return Ok(outcome);
            }
            loop {
                let want = (caps
                    .max_rows
                    .saturating_sub(set.rows.len() as u64)
                    .saturating_add(1))
                .min(FETCH_BATCH);
                let stream = txn
                    .query_portal_raw(&portal, want as i32)
                    .await
                    .map_err(|e| self.map_err(e))?;
                let (got, how) = self.drain(std::pin::pin!(stream), &types, &mut set).await?;
                if how == Drained::WireCapped {
                    drop(txn);
                    close(client);
                    if call.read_only && i + 1 == count {
                        outcome.affected = set.rows.len() as u64;
                        outcome.rows = Some(set);
                        return Ok(outcome);
                    }
                    return Err(ExecuteError::Target(format!(
                        "statement {} of the call returned a row over the {} bytes a message \
                         may take on this connection (the byte cap + 64 KiB); the session was \
                         closed and the transaction rolled back: nothing was committed",
                        i + 1,
                        self.connect.limit
                    )));
                }
                if how == Drained::Capped || got < want {
                    break;
                }
            }
            outcome.affected = set.rows.len() as u64;
            tally.returned(&st.kind, &set);
            outcome.rows = Some(set);
        }
        let changed = self.changed_rows(&txn, &tally).await?;
        tally.observed(changed.saturating_sub(changed_before));
        tally.check()?;
        // Write-ahead audit: nothing becomes permanent before the call's
        // intent is durable; if it cannot be recorded, dropping the
        // transaction rolls it back.
        intent.durable().await?;
        txn.commit().await.map_err(|e| self.map_err(e))?;
        self.after_commit(client, call).await;
        Ok(outcome)
    }

    /// A read-only, one-statement call in ONE round trip: `START TRANSACTION
    /// READ ONLY; SET LOCAL statement_timeout`, the statement's Bind/Execute,
    /// and `COMMIT` go out together (a future sends its messages on its first
    /// poll; they are polled in that order and the server runs them in that
    /// order), so the read-only wall and the timeout are in force before the
    /// statement runs. The portal is unnamed and unlimited, so the row/byte
    /// cap is applied while reading: once a cap is hit the connection is
    /// detached from the pool and closed, which makes the server stop sending
    /// (at most what is in flight crosses) and roll the transaction back.
    /// Writes, admin statements (SHOW: their session rules stay in one place)
    /// and multi-statement calls take [`PgEngine::run`]'s portal path.
    async fn read_in_one_round_trip(
        &self,
        client: deadpool_postgres::Object,
        stmt: &tokio_postgres::Statement,
        call: &QueryCall,
        caps: Caps,
    ) -> Result<QueryOutcome, ExecuteError> {
        let params = params::convert(stmt.params(), &call.params).map_err(ExecuteError::Target)?;
        let mut set = RowSet::new(column_descs(stmt.columns()), caps);
        set.origins = self.origins(&client, stmt.columns()).await?;
        let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
        let begin_sql = format!(
            "START TRANSACTION READ ONLY; SET LOCAL statement_timeout = {}",
            self.timeout_ms().max(1)
        );
        let begin = client.batch_execute(&begin_sql);
        let read = async {
            let bound = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync));
            let stream = client
                .query_raw(stmt, bound)
                .await
                .map_err(|e| self.map_err(e))?;
            pin_mut!(stream);
            match self.drain(stream.as_mut(), &types, &mut set).await?.1 {
                Drained::End => return Ok(false),
                // The session is closed: nothing more will come.
                Drained::WireCapped => return Ok(true),
                Drained::Capped => {}
            }
            // Just over the cap is common (`max_rows` + a few): read a few
            // rows more before giving the connection up; if the result ends
            // here, the session is clean and goes back to the pool. Rows
            // that big are not worth waiting for: past the byte cap in raw
            // bytes, the connection goes.
            let mut discarded = 0usize;
            for _ in 0..DISCARD_ROWS_BEFORE_CLOSE {
                match stream.try_next().await {
                    Ok(Some(row)) => {
                        discarded = (0..row.len())
                            .filter_map(|i| row.try_get::<_, values::RawValue<'_>>(i).ok())
                            .fold(discarded, |n, r| {
                                n.saturating_add(r.0.map_or(0, <[u8]>::len))
                            });
                        if discarded > caps.max_bytes {
                            return Ok(true);
                        }
                    }
                    Ok(None) => return Ok(false),
                    Err(e) => return Err(self.map_err(e)),
                }
            }
            Ok::<bool, ExecuteError>(true)
        };
        let capped_signal = tokio::sync::Notify::new();
        let read = async {
            let r = read.await;
            if matches!(r, Ok(true)) {
                capped_signal.notify_one();
            }
            r
        };
        let commit = async {
            tokio::select! {
                // `biased`: COMMIT is polled (sent) before anything else.
                biased;
                done = client.batch_execute("COMMIT") => Some(done),
                // Capped: the rest of the result is still on its way and the
                // COMMIT waits behind it; the connection will be dropped instead.
                _ = capped_signal.notified() => None,
            }
        };
        let (began, read, committed) = futures::join!(begin, read, commit);
        if let Err(e) = began {
            // Never reuse a session whose transaction state is unknown.
            close(client);
            return Err(self.map_err(e));
        }
        let capped = match read {
            Ok(capped) => capped,
            Err(e) => {
                // The server rolled the failed transaction back at COMMIT.
                if !matches!(committed, Some(Ok(()))) {
                    close(client);
                }
                return Err(e);
            }
        };
        match committed {
            Some(Ok(())) => {}
            // A capped read-only result is whole up to its cap: a COMMIT
            // that failed behind it (the session closed) loses nothing.
            Some(Err(_)) if capped => close(client),
            Some(Err(e)) => {
                close(client);
                return Err(self.map_err(e));
            }
            None => close(client),
        }
        Ok(QueryOutcome {
            affected: set.rows.len() as u64,
            rows: Some(set),
        })
    }

    /// For the blast-radius guard (see [`crate::affected`]), only when the
    /// call has a cap: rows this session changed that the server has not yet
    /// folded into its statistics (`pg_stat_xact_user_tables`, which sees
    /// writes by functions, triggers and data-modifying CTEs too). It also
    /// holds the session's recent earlier transactions (flushed only when
    /// idle, never inside a transaction), so a call's count is the
    /// difference from the value before its first statement. An error from
    /// the check drops the transaction, which rolls it back.
    async fn changed_rows(
        &self,
        txn: &deadpool_postgres::Transaction<'_>,
        tally: &Tally,
    ) -> Result<u64, ExecuteError> {
        if !tally.active() {
            return Ok(0);
        }
        let stmt = txn
            .prepare_cached(
                "SELECT COALESCE(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::int8 \
                 FROM pg_catalog.pg_stat_xact_user_tables",
            )
            .await
            .map_err(|e| self.map_err(e))?;
        let row = txn
            .query_one(&stmt, &[])
            .await
            .map_err(|e| self.map_err(e))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// After a committed call: reset the session when the call may have
    /// left state in it (see [`RESET_SESSION`]); a session that cannot be
    /// reset is closed, never handed to the next call.
    async fn after_commit(&self, client: deadpool_postgres::Object, call: &QueryCall) {
        if (call.touches_session() || !call.read_only)
            && let Err(e) = client.batch_execute(RESET_SESSION).await
        {
            tracing::warn!(error = %e, "cannot reset a PostgreSQL session after a call; closing it");
            drop(deadpool_postgres::Object::take(client));
        }
        if !call.read_only {
            // DDL may have renamed or replaced tables: forget cached origins.
            if let Ok(mut c) = self.catalog.lock() {
                c.clear();
            }
        }
    }

    /// Read how a fresh session of this role resolves unqualified names:
    /// its effective search path and the relations and functions on it. Uses
    /// a short-lived session of its own (the pooled ones run a pinned path).
    async fn read_name_catalog(&self) -> Result<NameCatalog, ExecuteError> {
        let (client, connection) = self
            .connect
            .connect(&self.unpinned)
            .await
            .map_err(|e| self.map_err(e))?;
        let driver = tokio::spawn(connection);
        let read = async {
            let path: Vec<String> = client
                .query_one(
                    "SELECT ARRAY(SELECT s FROM unnest(pg_catalog.current_schemas(true)) s \
                     WHERE s::text NOT LIKE 'pg\\_temp%')::text[]",
                    &[],
                )
                .await?
                .get(0);
            let relations = client
                .query(
                    "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S')",
                    &[&path],
                )
                .await?;
            let functions = client
                .query(
                    "SELECT DISTINCT n.nspname::text, p.proname::text FROM pg_catalog.pg_proc p \
                     JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                     WHERE n.nspname = ANY($1)",
                    &[&path],
                )
                .await?;
            let pair = |r: &tokio_postgres::Row| (r.get::<_, String>(0), r.get::<_, String>(1));
            Ok::<_, tokio_postgres::Error>(NameCatalog {
                path,
                relations: relations.iter().map(pair).collect(),
                functions: functions.iter().map(pair).collect(),
            })
        };
        let result = read.await.map_err(|e| self.map_err(e));
        drop(client);
        driver.abort();
        result
    }

    /// Every view's definition, fully qualified: read with only
    /// `pg_catalog` on the search path, `pg_get_viewdef` names every other
    /// relation with its schema, so lineage resolves it without a path.
    async fn read_view_definitions(&self) -> Result<Vec<ViewDefinition>, ExecuteError> {
        let mut client = self.client().await?;
        let txn = self.begin(&mut client, true).await?;
        txn.batch_execute("SET LOCAL search_path = pg_catalog")
            .await
            .map_err(|e| self.map_err(e))?;
        let rows = txn
            .query(
                "SELECT n.nspname::text, c.relname::text, pg_catalog.pg_get_viewdef(c.oid) \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'",
                &[],
            )
            .await
            .map_err(|e| self.map_err(e))?;
        txn.commit().await.map_err(|e| self.map_err(e))?;
        Ok(rows
            .iter()
            .map(|r| ViewDefinition {
                schema: r.get(0),
                name: r.get(1),
                sql: r.get::<_, Option<String>>(2).unwrap_or_default(),
            })
            .collect())
    }

    async fn describe(&self, call: &SchemaCall) -> Result<Value, ExecuteError> {
        let mut client = self.client().await?;
        let txn = self.begin(&mut client, true).await?;
        let stmt = txn
            .prepare_cached(
                "SELECT n.nspname::text, c.relname::text, c.relkind::text, a.attname::text, \
                 pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, \
                 COALESCE(a.attnum = ANY(i.indkey), false) \
                 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary \
                 WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') \
                 AND (($1::text IS NULL AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                       AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%') OR n.nspname = $1) \
                 AND ($2::text IS NULL OR c.relname = $2) \
                 ORDER BY 1, 2, a.attnum",
            )
            .await
            .map_err(|e| self.map_err(e))?;
        let rows = txn
            .query(&stmt, &[&call.schema, &call.table])
            .await
            .map_err(|e| self.map_err(e))?;
        txn.commit().await.map_err(|e| self.map_err(e))?;
        let mut tables: Vec<Value> = Vec::new();
        let mut key = (String::new(), String::new());
        for r in rows {
            let (schema, name, kind): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            if (schema.as_str(), name.as_str()) != (key.0.as_str(), key.1.as_str()) {
                key = (schema.clone(), name.clone());
                let kind = match kind.as_str() {
                    "v" => "view",
                    "m" => "materialized view",
                    "f" => "foreign table",
                    _ => "table",
                };
                tables.push(json!({"schema": schema, "name": name, "kind": kind, "columns": []}));
            }
            if let Some(cols) = tables
                .last_mut()
                .and_then(|t| t.get_mut("columns"))
                .and_then(Value::as_array_mut)
            {
                cols.push(json!({
                    "name": r.get::<_, String>(3),
                    "type": r.get::<_, String>(4),
                    "nullable": r.get::<_, bool>(5),
                    "primary_key": r.get::<_, bool>(6),
                }));
            }
        }
        Ok(json!({ "tables": tables }))
    }
}

/// Result column descriptions (types PostgreSQL names; unsupported ones say
/// how their values come back).
fn column_descs(columns: &[tokio_postgres::Column]) -> Vec<ColumnDesc> {
    columns
        .iter()
        .map(|c| ColumnDesc {
            name: c.name().to_string(),
            type_name: if values::supported(c.type_()) {
                values::type_name(c.type_())
            } else {
                format!(
                    "{} (unsupported: binary value as base64)",
                    values::type_name(c.type_())
                )
            },
        })
        .collect()
}

/// Map a tokio-postgres error to the connector's error. Never includes
/// connection parameters (tokio-postgres never prints them).
pub fn map_pg_error(e: tokio_postgres::Error, timeout_ms: u64) -> ExecuteError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::QUERY_CANCELED {
            return ExecuteError::Timeout(timeout_ms);
        }
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return ExecuteError::Unavailable(format!("authentication failed: {}", db.message()));
        }
        if code.code().starts_with("08") || code.code().starts_with("57P") || code.code() == "3D000"
        {
            return ExecuteError::Unavailable(format!(
                "{} (SQLSTATE {})",
                db.message(),
                code.code()
            ));
        }
        let mut m = format!("{} (SQLSTATE {})", db.message(), code.code());
        if let Some(h) = db.hint() {
            m.push_str(&format!("; hint: {h}"));
        }
        return ExecuteError::Target(m);
    }
    if e.is_closed() {
        return ExecuteError::Unavailable("the database closed the connection".into());
    }
    // The cause chain says what to fix ("error performing TLS handshake" alone
    // does not: an unknown issuer, a name the certificate does not carry...).
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    if text.contains("connect")
        || text.contains("communicating")
        || text.contains("timed out")
        || text.contains("TLS")
        || text.contains("tls")
    {
        ExecuteError::Unavailable(text)
    } else {
        ExecuteError::Target(text)
    }
}

#[async_trait]
impl Engine for PgEngine {
    async fn query(
        &self,
        call: &QueryCall,
        caps: Caps,
        stop: &ExecLimits,
    ) -> Result<QueryOutcome, ExecuteError> {
        stop.check()?;
        // Backstop behind the server-side statement_timeout: a hung network
        // must not hang the call. The caller's budget may be shorter.
        let started = tokio::time::Instant::now();
        let limit = self.timeout * call.statements.len().max(1) as u32 + CONNECT_TIMEOUT * 2;
        let budget = Some(stop.timeout_within(limit));
        let client = tokio::select! {
            c = self.client() => c?,
            e = stop.stopped(started, budget) => return Err(e),
        };
        let cancel = client.cancel_token();
        let work = self.run(client, call, caps, &stop.intent);
        tokio::pin!(work);
        tokio::select! {
            r = &mut work => r,
            e = stop.stopped(started, budget) => {
                // Stop the statement on the server, not just here: the
                // backend would otherwise run on (and hold its locks) after
                // the caller is gone. Then let the call end cleanly, so its
                // transaction rolls back before the session is reused.
                // A cancel request is best effort: one that lands between two
                // commands of a pipelined call stops the earlier one only.
                // Send it again until the work ends or the grace runs out.
                let deadline = tokio::time::Instant::now() + CANCEL_GRACE;
                loop {
                    if let Err(err) = self.connect.cancel(&self.pinned, &cancel).await {
                        tracing::warn!(error = %err, "could not cancel a PostgreSQL statement");
                    }
                    if tokio::time::timeout(CANCEL_RESEND, &mut work).await.is_ok() {
                        break;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        tracing::warn!("a cancelled PostgreSQL statement did not end within the grace period");
                        break;
                    }
                }
                Err(e)
            }
        }
    }

    async fn schema(&self, call: &SchemaCall, stop: &ExecLimits) -> Result<Value, ExecuteError> {
        stop.check()?;
        // A catalog read: abandoning it is enough (it holds no locks a
        // writer waits on and ends by itself within the timeout).
        let started = tokio::time::Instant::now();
        let limit = self.timeout + CONNECT_TIMEOUT * 2;
        tokio::select! {
            r = self.describe(call) => r,
            e = stop.stopped(started, Some(stop.timeout_within(limit))) => Err(e),
        }
    }

    async fn view_definitions(
        &self,
        stop: &ExecLimits,
    ) -> Result<Vec<ViewDefinition>, ExecuteError> {
        stop.check()?;
        let started = tokio::time::Instant::now();
        let limit = self.timeout + CONNECT_TIMEOUT * 2;
        tokio::select! {
            r = self.read_view_definitions() => r,
            e = stop.stopped(started, Some(stop.timeout_within(limit))) => Err(e),
        }
    }

    async fn name_catalog(&self) -> Result<Option<NameCatalog>, ExecuteError> {
        let limit = self.timeout + CONNECT_TIMEOUT * 2;
        tokio::time::timeout(limit, self.read_name_catalog())
            .await
            .unwrap_or(Err(ExecuteError::Timeout(limit.as_millis() as u64)))
            .map(Some)
    }
}
