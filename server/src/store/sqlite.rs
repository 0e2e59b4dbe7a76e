//! Embedded SQLite audit store: `<data_dir>/tollgate.db`, WAL,
//! `synchronous=FULL`, schema from [`super::migrations`].
//!
//! Event writes go through the single group-commit writer
//! ([`super::writer`]); reads (get, list, verify, export) and the writes of
//! content-addressed recordings (`recordings` table, no chain head to keep)
//! use a small connection pool, which WAL lets run beside the writer.
//! `verify` checks the chain and, for each event that names a recording,
//! that the stored file is there with its sha256 and size. The pool is also what other embedded stores
//! (approvals) share: [`SqliteAuditStore::pool`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use gateway_core::Principal;
use gateway_core::audit::{
    AuditEvent, AuditFilter, AuditRecord, AuditStore, BreakKind, ChainBreak, ChainVerifier,
    EventStream, ListOrder, StoreError, VerifyReport, format_time,
};
use gateway_core::recording::RenderedRecording;
use serde::de::DeserializeOwned;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, QueryBuilder, Row, Sqlite};
use tokio::sync::{mpsc, oneshot};

use super::migrations;
use super::writer::{self, Pending, Shared, Writer};

/// File name of the embedded database inside `data_dir`.
pub const DB_FILE: &str = "tollgate.db";

const COLUMNS: &str = "seq, id, time, principal_sub, principal_groups, tool, connection, arguments, requests, \
                       decision, approval, outcome, result_preview, masked, recording, intent, prev_hash, hash";
/// Directory inside `data_dir` holding one locked file per open store
/// handle: how a start tells a crashed writer's open intents from a
/// running one's (see [`SqliteAuditStore::unfinished_intents`]).
const WRITERS_DIR: &str = "writers";
const PAGE: i64 = 500;

/// Tuning of the SQLite store. The defaults suit production.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Most events written in one transaction.
    pub max_batch: usize,
    /// Appends that may wait for the writer before `append` itself waits.
    pub queue: usize,
    /// How long a statement waits for a lock held by another connection.
    pub busy_timeout: Duration,
    /// Read pool size.
    pub read_connections: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch: 256,
            queue: 4096,
            busy_timeout: Duration::from_secs(5),
            read_connections: 4,
        }
    }
}

/// Writer counters (see [`SqliteAuditStore::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Committed write transactions.
    pub transactions: u64,
    /// Events committed.
    pub events: u64,
    /// Batches that failed (none of their events recorded).
    pub failed_batches: u64,
    /// Most events committed in one transaction.
    pub largest_batch: usize,
}

/// The embedded audit store.
pub struct SqliteAuditStore {
    path: PathBuf,
    /// This handle's writer id and its lock file, held (exclusively locked)
    /// while the handle lives.
    writer: WriterLock,
    /// The file's identity when opened (see [`writer::file_id`]).
    file_id: Option<writer::FileId>,
    pool: SqlitePool,
    tx: mpsc::Sender<Pending>,
    shared: Arc<Shared>,
}

// === impl SqliteAuditStore ===

impl SqliteAuditStore {
    /// Open (creating `data_dir` and the database if needed, migrating the
    /// schema) with default options. Must run inside a tokio runtime.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, SqliteOptions::default()).await
    }

    /// Open a store that must already exist (the `tollgate audit` CLI: a
    /// mistyped `data_dir` is an error, not a new empty log).
    pub async fn open_existing(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(DB_FILE);
        if !path.is_file() {
            return Err(StoreError::Open {
                location: path.display().to_string(),
                reason:
                    "no audit database here; check server.data_dir (`tollgate serve` creates it)"
                        .into(),
            });
        }
        Self::open(data_dir).await
    }

    /// [`SqliteAuditStore::open`] with explicit options.
    pub async fn open_with(data_dir: &Path, opts: SqliteOptions) -> Result<Self, StoreError> {
        let path = data_dir.join(DB_FILE);
        let open_err = |reason: String| StoreError::Open {
            location: path.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(data_dir)
            .map_err(|e| open_err(format!("cannot create data_dir: {e}")))?;

        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(opts.busy_timeout)
            .foreign_keys(true)
            // Statement journals of the batch INSERT in memory: on disk they
            // cost a temp file create + unlink per commit.
            .pragma("temp_store", "memory");

        let mut conn = connect
            .connect()
            .await
            .map_err(|e| open_err(e.to_string()))?;
        migrations::migrate(&mut conn).await.map_err(open_err)?;
        let shared = Arc::new(Shared::default());
        // An inconsistent head does not stop the store from opening (verify,
        // list and export must work to investigate), but appends are refused.
        let conn = match writer::load_head(&mut conn).await {
            Ok(head) => Some((conn, head)),
            Err(e) => {
                tracing::error!(error = %e, "audit store opened UNHEALTHY");
                shared.set_unhealthy(Some(e.to_string()));
                None
            }
        };

        let pool = SqlitePoolOptions::new()
            .max_connections(opts.read_connections.max(1))
            .connect_with(connect.clone().create_if_missing(false))
            .await
            .map_err(|e| open_err(e.to_string()))?;

        let (tx, rx) = mpsc::channel(opts.queue.max(1));
        let file_id = writer::file_id(&path).map_err(|e| open_err(e.to_string()))?;
        let lock = WriterLock::take(data_dir).map_err(open_err)?;
        let writer = Writer {
            writer_id: lock.id.clone(),
            // Reconnects never create a file: a vanished database is an error,
            // not a fresh chain starting at seq 1.
            options: connect.clone().create_if_missing(false),
            path: path.clone(),
            file_id,
            conn,
            rx,
            shared: shared.clone(),
            max_batch: opts.max_batch.max(1),
        };
        tokio::spawn(writer.run());
        Ok(SqliteAuditStore {
            path,
            writer: lock,
            file_id,
            pool,
            tx,
            shared,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The read/write pool on the same database, for other embedded stores
    /// (approvals). Never write `audit_events` or `audit_head` through it.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Writer counters: batching is visible as `transactions < events`.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            transactions: self.shared.transactions.load(Ordering::Relaxed),
            events: self.shared.events.load(Ordering::Relaxed),
            failed_batches: self.shared.failed_batches.load(Ordering::Relaxed),
            largest_batch: self.shared.largest_batch.load(Ordering::Relaxed),
        }
    }
}

impl SqliteAuditStore {
    async fn enqueue(&self, record: AuditRecord, flushed: bool) -> Result<AuditEvent, StoreError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Pending {
                record,
                flushed,
                ack,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        done.await.map_err(|_| StoreError::Closed)?
    }
}

/// `<db>-wal`, SQLite's write-ahead log beside the database.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// A store handle's identity among the processes sharing one database:
/// `<data_dir>/writers/<id>.lock`, exclusively locked while the handle
/// lives (the operating system drops the lock when the process dies, even
/// by `kill -9`). Removed when the handle is dropped.
struct WriterLock {
    id: String,
    dir: PathBuf,
    _file: std::fs::File,
}

impl WriterLock {
    fn take(data_dir: &Path) -> Result<Self, String> {
        let dir = data_dir.join(WRITERS_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let id = uuid::Uuid::new_v4().to_string();
        let path = dir.join(format!("{id}.lock"));
        let file = std::fs::File::create(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        file.try_lock()
            .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
        Ok(WriterLock {
            id,
            dir,
            _file: file,
        })
    }

    /// Is the writer `id` still running (its lock file held by someone)?
    fn is_held(dir: &Path, id: &str) -> bool {
        let Ok(file) = std::fs::File::open(dir.join(format!("{id}.lock"))) else {
            return false;
        };
        match file.try_lock() {
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) => true,
            // Cannot tell: treat as running (never close a live call's intent).
            Err(std::fs::TryLockError::Error(_)) => true,
        }
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.join(format!("{}.lock", self.id)));
    }
}

#[async_trait]
impl AuditStore for SqliteAuditStore {
    async fn append(&self, record: AuditRecord) -> Result<AuditEvent, StoreError> {
        self.enqueue(record, true).await
    }

    async fn append_written(&self, record: AuditRecord) -> Result<AuditEvent, StoreError> {
        self.enqueue(record, false).await
    }

    /// fsync of the database and its WAL: what `synchronous=NORMAL`
    /// commits left in the operating system's cache reaches the disk (on
    /// Linux an fsync through any descriptor flushes the file's pages).
    async fn sync(&self) -> Result<(), StoreError> {
        let files = [self.path.clone(), wal_path(&self.path)];
        tokio::task::spawn_blocking(move || {
            for file in &files {
                match std::fs::File::open(file) {
                    Ok(f) => f.sync_all().map_err(|e| StoreError::Write {
                        reason: format!("cannot flush {}: {e}", file.display()),
                    })?,
                    // No WAL right now: everything is in the database file.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(StoreError::Write {
                            reason: format!("cannot flush {}: {e}", file.display()),
                        });
                    }
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Write {
            reason: e.to_string(),
        })?
    }

    /// Open intents (`open_intents`) whose writer's lock file is no longer
    /// held: that process is gone. This handle's own and other running
    /// writers' intents are calls in flight.
    async fn unfinished_intents(&self) -> Result<Vec<AuditEvent>, StoreError> {
        let open: Vec<(String, String)> =
            sqlx::query_as("SELECT id, writer FROM open_intents ORDER BY seq")
                .fetch_all(&self.pool)
                .await
                .map_err(read_err)?;
        let dir = self.writer.dir.clone();
        let mut gone: std::collections::BTreeMap<String, bool> = Default::default();
        let mut events = Vec::new();
        for (id, writer) in open {
            if writer == self.writer.id {
                continue;
            }
            let dead = *gone
                .entry(writer.clone())
                .or_insert_with(|| !WriterLock::is_held(&dir, &writer));
            if dead && let Some(event) = self.get(&id).await? {
                events.push(event);
            }
        }
        for (writer, dead) in gone {
            if dead {
                let _ = std::fs::remove_file(dir.join(format!("{writer}.lock")));
            }
        }
        Ok(events)
    }

    async fn get(&self, id: &str) -> Result<Option<AuditEvent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_events WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(read_err)?;
        row.as_ref().map(decode).transpose().map_err(corrupt)
    }

    async fn list(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        // Two steps: the matching seqs (ordered and limited on the index or
        // rowid alone), then those rows. Sorting whole rows is what made a
        // time range over a big store slow (measured on 1M events: a day's
        // range 412 ms in one step, 98 ms in two).
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {COLUMNS} FROM audit_events WHERE seq IN (SELECT seq FROM audit_events WHERE 1 = 1"
        ));
        if !f.intents {
            qb.push(" AND is_intent = 0");
        }
        if let Some(v) = &f.principal {
            qb.push(" AND principal_sub = ").push_bind(v.clone());
        }
        if let Some(v) = &f.tool {
            qb.push(" AND tool = ").push_bind(v.clone());
        }
        if let Some(v) = &f.connection {
            qb.push(" AND connection = ").push_bind(v.clone());
        }
        if let Some(v) = &f.decision {
            qb.push(" AND decision = ").push_bind(v.clone());
        }
        // Stored times are fixed-width RFC 3339 UTC, so text order is time order.
        if let Some(t) = f.since {
            qb.push(" AND time >= ").push_bind(format_time(t));
        }
        if let Some(t) = f.until {
            qb.push(" AND time <= ").push_bind(format_time(t));
        }
        if let Some(s) = f.after_seq {
            qb.push(" AND seq > ")
                .push_bind(s.min(i64::MAX as u64) as i64);
        }
        if let Some(s) = f.before_seq {
            qb.push(" AND seq < ")
                .push_bind(s.min(i64::MAX as u64) as i64);
        }
        // Free text over the tool and the recorded (masked) arguments as
        // stored (JSON text); LIKE is ASCII case-insensitive in SQLite.
        // `%`, `_` and `\` in the text are matched literally.
        if let Some(t) = &f.text {
            let pattern = format!("%{}%", like_escape(t));
            qb.push(" AND (tool LIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR arguments LIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
        qb.push(match f.order {
            ListOrder::NewestFirst => " ORDER BY seq DESC",
            ListOrder::OldestFirst => " ORDER BY seq ASC",
        });
        qb.push(" LIMIT ").push_bind(i64::from(f.effective_limit()));
        qb.push(match f.order {
            ListOrder::NewestFirst => ") ORDER BY seq DESC",
            ListOrder::OldestFirst => ") ORDER BY seq ASC",
        });
        let rows = qb.build().fetch_all(&self.pool).await.map_err(read_err)?;
        rows.iter()
            .map(decode)
            .collect::<Result<_, _>>()
            .map_err(corrupt)
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        // Read the recorded head first and check only up to it: events the
        // writer commits meanwhile are not half-seen (head and rows commit together).
        let recorded: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(read_err)?;
        let upto = recorded.as_ref().map_or(i64::MAX, |(s, _)| *s);
        let mut verifier = ChainVerifier::new();
        let mut after = 0i64;
        'pages: loop {
            let rows = page(&self.pool, after, upto).await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get::<i64, _>("seq").map_err(read_err)?;
            for row in &rows {
                let ok = match decode(row) {
                    Ok(event) => {
                        // The file the event names must be here, unchanged.
                        let beside = match &event.record.recording {
                            Some(r) => BreakKind::of_recording(
                                r,
                                self.recording(&r.sha256).await?.as_deref(),
                            ),
                            None => None,
                        };
                        verifier.push_checked(&event, beside)
                    }
                    Err((seq, reason)) => verifier.push_unreadable(seq, reason),
                };
                if !ok {
                    break 'pages;
                }
            }
        }
        let mut report = verifier.finish(recorded.as_ref().map(|(s, h)| (*s as u64, h.as_str())));
        if recorded.is_none()
            && report.first_break.is_none()
            && let Some(last_seq) = report.last_seq
        {
            // Events without a recorded head: the head row was deleted.
            report.first_break = Some(ChainBreak {
                seq: last_seq,
                id: None,
                kind: BreakKind::HeadMismatch {
                    recorded_hash: "(no recorded head)".into(),
                    event_hash: report.last_hash.clone().unwrap_or_default(),
                },
            });
        }
        Ok(report)
    }

    fn healthy(&self) -> Result<(), StoreError> {
        if self.tx.is_closed() {
            return Err(StoreError::Closed);
        }
        match self.shared.unhealthy() {
            None => Ok(()),
            Some(reason) => Err(StoreError::Unhealthy {
                reason: format!(
                    "{reason} (database {}; retried on the next event)",
                    self.path.display()
                ),
            }),
        }
    }

    /// Written through the pool, not the event writer: a recording touches
    /// no chain head, and the pool's connections have the writer's
    /// settings (WAL, `synchronous=FULL`), so the INSERT's commit is as
    /// durable as an event batch's. The same content twice is one row; a
    /// row already there under this sha256 with other content (edited in
    /// the file) fails the call closed rather than be named again.
    async fn put_recording(&self, recording: &RenderedRecording) -> Result<(), StoreError> {
        // As the writer: acking a write into a replaced or deleted file
        // would be a lie about durability.
        match writer::file_id(&self.path) {
            Ok(id) if id == self.file_id => {}
            _ => {
                return Err(StoreError::Write {
                    reason: format!(
                        "{} was replaced or removed while open; restart tollgate after checking it",
                        self.path.display()
                    ),
                });
            }
        }
        let reference = &recording.reference;
        let inserted = sqlx::query(
            "INSERT INTO recordings (sha256, bytes, body) VALUES (?, ?, ?) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&reference.sha256)
        .bind(i64::try_from(reference.bytes).unwrap_or(i64::MAX))
        .bind(&recording.body)
        .execute(&self.pool)
        .await
        .map_err(write_err)?
        .rows_affected();
        if inserted == 0 {
            let stored = self.recording(&reference.sha256).await?;
            if let Some(problem) =
                gateway_core::audit::chain::recording_problem(reference, stored.as_deref())
            {
                return Err(StoreError::Write {
                    reason: format!(
                        "recording {} {problem}; run `tollgate audit verify`",
                        reference.sha256
                    ),
                });
            }
        }
        Ok(())
    }

    async fn recording(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT body FROM recordings WHERE sha256 = ?")
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(read_err)
    }

    fn export(&self) -> EventStream {
        let pool = self.pool.clone();
        futures::stream::unfold(Some((pool, 0i64)), |state| async move {
            let (pool, after) = state?;
            match page(&pool, after, i64::MAX).await {
                Err(e) => Some((vec![Err(e)], None)),
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let full = rows.len() as i64 == PAGE;
                    let events: Vec<Result<AuditEvent, StoreError>> =
                        rows.iter().map(|r| decode(r).map_err(corrupt)).collect();
                    let next_after = rows
                        .last()
                        .and_then(|r| r.try_get::<i64, _>("seq").ok())
                        .unwrap_or(after);
                    let next = full.then_some((pool, next_after));
                    Some((events, next))
                }
            }
        })
        .flat_map(futures::stream::iter)
        .boxed()
    }
}

async fn page(pool: &SqlitePool, after: i64, upto: i64) -> Result<Vec<SqliteRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(upto)
        .bind(PAGE)
        .fetch_all(pool)
        .await
        .map_err(read_err)
}

/// Rebuild the event from its row. Every column feeds the event, hence the hash.
fn decode(row: &SqliteRow) -> Result<AuditEvent, (u64, String)> {
    let seq: i64 = row.try_get("seq").map_err(|e| (0, e.to_string()))?;
    let seq = seq as u64;
    let err = |e: String| (seq, e);
    let text = |col: &str| {
        row.try_get::<String, _>(col)
            .map_err(|e| err(format!("{col}: {e}")))
    };
    let opt_text = |col: &str| {
        row.try_get::<Option<String>, _>(col)
            .map_err(|e| err(format!("{col}: {e}")))
    };
    fn parse<T: DeserializeOwned>(col: &str, s: &str) -> Result<T, String> {
        serde_json::from_str(s).map_err(|e| format!("{col}: {e}"))
    }
    let record = AuditRecord {
        principal: Principal {
            sub: text("principal_sub")?,
            groups: parse("principal_groups", &text("principal_groups")?).map_err(err)?,
        },
        tool: text("tool")?,
        connection: opt_text("connection")?,
        arguments: parse("arguments", &text("arguments")?).map_err(err)?,
        requests: parse("requests", &text("requests")?).map_err(err)?,
        decision: text("decision")?,
        approval: opt_text("approval")?
            .map(|a| parse("approval", &a))
            .transpose()
            .map_err(err)?,
        outcome: parse("outcome", &text("outcome")?).map_err(err)?,
        result_preview: parse("result_preview", &text("result_preview")?).map_err(err)?,
        masked: parse("masked", &text("masked")?).map_err(err)?,
        recording: opt_text("recording")?
            .map(|r| parse("recording", &r))
            .transpose()
            .map_err(err)?,
        intent: opt_text("intent")?,
    };
    Ok(AuditEvent {
        id: text("id")?,
        seq,
        time: text("time")?,
        record,
        prev_hash: text("prev_hash")?,
        hash: text("hash")?,
    })
}

fn write_err(e: sqlx::Error) -> StoreError {
    StoreError::Write {
        reason: e.to_string(),
    }
}

fn read_err(e: sqlx::Error) -> StoreError {
    StoreError::Read {
        reason: e.to_string(),
    }
}

fn corrupt((seq, reason): (u64, String)) -> StoreError {
    StoreError::Corrupt { seq, reason }
}

/// `s` with the LIKE wildcards `%` and `_` (and the escape backslash) escaped.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
