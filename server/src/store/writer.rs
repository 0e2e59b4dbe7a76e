//! The single audit writer: group commit over one SQLite connection.
//!
//! Appenders send `(record, oneshot)` over a bounded channel. This task owns
//! the chain head: it takes whatever is queued (up to `max_batch`), numbers
//! and hashes the events, writes them and the new head in ONE transaction
//! (one WAL fsync with `synchronous=FULL`), and only then acknowledges every
//! appender. If anything fails, every appender of the batch gets an error,
//! the transaction is rolled back, the connection is dropped, and the head is
//! forgotten: the next batch reconnects and reloads the head from disk, so
//! the in-memory chain can never run ahead of what is durable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use chrono::Utc;
use gateway_core::audit::{AuditEvent, AuditRecord, GENESIS_HASH, StoreError, format_time};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

/// One queued append.
pub(super) struct Pending {
    pub record: AuditRecord,
    /// Acknowledge only after the disk flush (`synchronous=FULL`); false:
    /// once the operating system has the write (`synchronous=NORMAL`, see
    /// `AuditStore::append_written`).
    pub flushed: bool,
    pub ack: oneshot::Sender<Result<AuditEvent, StoreError>>,
}

/// Seq and hash of the newest durable event (0 and 64 zeros when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Head {
    pub seq: u64,
    pub hash: String,
}

/// Counters and health shared between the writer and the store handle.
#[derive(Default)]
pub(super) struct Shared {
    pub transactions: AtomicU64,
    pub events: AtomicU64,
    pub failed_batches: AtomicU64,
    pub largest_batch: AtomicUsize,
    /// `Some(reason)` while the store is known unable to write.
    pub unhealthy: Mutex<Option<String>>,
}

impl Shared {
    pub fn set_unhealthy(&self, reason: Option<String>) {
        *self.unhealthy.lock().unwrap_or_else(|p| p.into_inner()) = reason;
    }

    pub fn unhealthy(&self) -> Option<String> {
        self.unhealthy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub(super) struct Writer {
    pub options: SqliteConnectOptions,
    /// This store handle's id in `open_intents.writer`.
    pub writer_id: String,
    /// `None` after a failure: reconnect (and reload the head) before writing.
    pub conn: Option<(SqliteConnection, Head)>,
    pub rx: mpsc::Receiver<Pending>,
    pub shared: Arc<Shared>,
    pub max_batch: usize,
    /// The database file and its identity when opened: an open connection
    /// keeps writing to a deleted or replaced file, so check before each batch.
    pub path: PathBuf,
    pub file_id: Option<FileId>,
}

/// (device, inode) of a file; `None` where the platform has no such notion.
pub(super) type FileId = (u64, u64);

pub(super) fn file_id(path: &Path) -> std::io::Result<Option<FileId>> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(Some((meta.dev(), meta.ino())))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Ok(None)
    }
}

// === impl Writer ===

impl Writer {
    pub async fn run(mut self) {
        let mut batch: Vec<Pending> = Vec::with_capacity(self.max_batch);
        while self.rx.recv_many(&mut batch, self.max_batch).await > 0 {
            let size = batch.len();
            // One flushed append makes the whole batch flushed (and every
            // earlier unflushed commit with it: the WAL is one file).
            let flushed = batch.iter().any(|p| p.flushed);
            let (records, acks): (Vec<AuditRecord>, Vec<_>) =
                batch.drain(..).map(|p| (p.record, p.ack)).unzip();
            match self.write(records, flushed).await {
                Ok(events) => {
                    self.shared.transactions.fetch_add(1, Ordering::Relaxed);
                    self.shared.events.fetch_add(size as u64, Ordering::Relaxed);
                    self.shared.largest_batch.fetch_max(size, Ordering::Relaxed);
                    self.shared.set_unhealthy(None);
                    for (ack, event) in acks.into_iter().zip(events) {
                        // The appender may have gone away; the event is recorded regardless.
                        let _ = ack.send(Ok(event));
                    }
                }
                Err(err) => {
                    self.shared.failed_batches.fetch_add(1, Ordering::Relaxed);
                    let reason = match &err {
                        StoreError::Write { reason } | StoreError::Unhealthy { reason } => {
                            reason.clone()
                        }
                        other => other.to_string(),
                    };
                    tracing::error!(error = %err, batch = size, "audit batch NOT recorded");
                    self.shared.set_unhealthy(Some(reason));
                    for ack in acks {
                        let _ = ack.send(Err(err.clone()));
                    }
                }
            }
        }
        tracing::debug!("audit writer stopped");
    }

    async fn write(
        &mut self,
        mut records: Vec<AuditRecord>,
        flushed: bool,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        // Acking events written into an unlinked inode would be a lie about durability.
        match file_id(&self.path) {
            Ok(id) if id == self.file_id => {}
            Ok(_) => {
                self.conn = None;
                return Err(StoreError::Unhealthy {
                    reason: format!(
                        "{} was replaced while open; restart tollgate after checking it",
                        self.path.display()
                    ),
                });
            }
            Err(e) => {
                self.conn = None;
                return Err(StoreError::Write {
                    reason: format!(
                        "{} is gone ({e}); restore it or restart tollgate",
                        self.path.display()
                    ),
                });
            }
        }
        // Another process may share this store (`tollgate serve --stdio` beside
        // the HTTP server): a head cached here is then stale and the batch's
        // first seq collides with theirs. The batch is then written again
        // with the head read under the write lock (`BEGIN IMMEDIATE` first),
        // which no other writer can move: the chain stays one chain, nothing
        // is lost, and no writer can starve another.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let locked = attempt > 1;
            let (mut conn, head) = match self.conn.take() {
                Some(c) if !locked => c,
                cached => {
                    // A failed try's connection is dropped: SQLite rolls its
                    // open transaction back on close.
                    drop(cached);
                    let mut conn = self.options.connect().await.map_err(write_err)?;
                    if locked {
                        begin_locked(&mut conn, flushed).await.map_err(write_err)?;
                    }
                    let head = load_head(&mut conn).await?;
                    (conn, head)
                }
            };
            let (events, head) = seal_batch(records, head);
            match write_batch(&mut conn, &events, flushed, &self.writer_id, locked).await {
                Ok(()) => {
                    self.conn = Some((conn, head));
                    return Ok(events);
                }
                Err(e) if attempt < STALE_HEAD_RETRIES && is_seq_collision(&e) => {
                    tracing::debug!(
                        "audit head moved under this writer (another process?); resealing"
                    );
                    // The records come back out of the unwritten events: no
                    // copy of the batch on the path that succeeds.
                    records = events.into_iter().map(|e| e.record).collect();
                    continue;
                }
                Err(e) => return Err(write_err(e)),
            }
        }
    }
}

/// Set the batch's durability and take the write lock before reading the
/// head (the path after a collision).
async fn begin_locked(conn: &mut SqliteConnection, flushed: bool) -> Result<(), sqlx::Error> {
    let sql = if flushed {
        "PRAGMA synchronous = FULL; BEGIN IMMEDIATE"
    } else {
        "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE"
    };
    sqlx::raw_sql(sql).execute(conn).await.map(|_| ())
}

/// Tries of one batch whose seq collides with events another process wrote.
const STALE_HEAD_RETRIES: usize = 8;

/// Number and hash `records` after `head`; the new head comes back with them.
fn seal_batch(records: Vec<AuditRecord>, head: Head) -> (Vec<AuditEvent>, Head) {
    let mut seq = head.seq;
    let mut prev = head.hash;
    let events: Vec<AuditEvent> = records
        .into_iter()
        .map(|record| {
            seq += 1;
            let time = format_time(Utc::now());
            let event = AuditEvent::seal(
                record,
                // v7: time-ordered, so the `id` index grows at its right
                // edge (one page per commit) instead of one random page
                // per event.
                uuid::Uuid::now_v7().to_string(),
                seq,
                time,
                prev.clone(),
            );
            prev = event.hash.clone();
            event
        })
        .collect();
    (events, Head { seq, hash: prev })
}

/// The batch's seq is taken: another writer appended since this head was read.
fn is_seq_collision(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.message().contains("audit_events.seq")
                && matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation)
        }
        _ => false,
    }
}

const EVENT_COLUMNS: usize = 19;

/// `(?, ?, ...)` of `n` parameters, `rows` times, comma-separated.
fn rows_sql(sql: &mut String, rows: usize, n: usize) {
    let row = format!("({})", vec!["?"; n].join(", "));
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&row);
    }
}

/// The whole batch as ONE statement list, so it crosses to sqlx's SQLite
/// worker thread once (`locked`: the transaction is already open, see
/// [`begin_locked`]): the batch's durability (`synchronous` FULL: COMMIT
/// returns after the WAL fsync; NORMAL: after the write reached the
/// operating system), `BEGIN IMMEDIATE`, one multi-row INSERT of every
/// event, the open-intent bookkeeping, the head upsert, `COMMIT`. Any
/// failure stops the list with the transaction still open; the caller then
/// drops the connection, which rolls it back.
fn batch_sql(n: usize, intents: usize, closing: usize, flushed: bool, locked: bool) -> String {
    let mut sql = String::with_capacity(600 + n * (EVENT_COLUMNS * 3 + 4));
    if !locked {
        sql.push_str(if flushed {
            "PRAGMA synchronous = FULL; BEGIN IMMEDIATE; "
        } else {
            "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE; "
        });
    }
    sql.push_str(
        "INSERT INTO audit_events (seq, id, time, principal_sub, principal_groups, tool, connection, arguments, \
         requests, decision, approval, outcome, result_preview, masked, recording, intent, is_intent, prev_hash, hash) VALUES ",
    );
    rows_sql(&mut sql, n, EVENT_COLUMNS);
    if intents > 0 {
        sql.push_str("; INSERT INTO open_intents (id, seq, writer) VALUES ");
        rows_sql(&mut sql, intents, 3);
    }
    if closing > 0 {
        sql.push_str("; DELETE FROM open_intents WHERE id IN ");
        rows_sql(&mut sql, 1, closing);
    }
    sql.push_str(
        "; INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash; \
         COMMIT",
    );
    sql
}

async fn write_batch(
    conn: &mut SqliteConnection,
    events: &[AuditEvent],
    flushed: bool,
    writer_id: &str,
    locked: bool,
) -> Result<(), sqlx::Error> {
    let Some(last) = events.last() else {
        return Ok(());
    };
    let intents: Vec<&AuditEvent> = events.iter().filter(|e| e.record.is_intent()).collect();
    let closing: Vec<&String> = events
        .iter()
        .filter_map(|e| e.record.intent.as_ref())
        .collect();
    let sql = batch_sql(events.len(), intents.len(), closing.len(), flushed, locked);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for e in events {
        let r = &e.record;
        query = query
            .bind(e.seq as i64)
            .bind(e.id.clone())
            .bind(e.time.clone())
            .bind(r.principal.sub.clone())
            .bind(json(&r.principal.groups))
            .bind(r.tool.clone())
            .bind(r.connection.clone())
            .bind(json(&r.arguments))
            .bind(json(&r.requests))
            .bind(r.decision.clone())
            .bind(r.approval.as_ref().map(json))
            .bind(json(&r.outcome))
            .bind(json(&r.result_preview))
            .bind(json(&r.masked))
            .bind(r.recording.as_ref().map(json))
            .bind(r.intent.clone())
            .bind(i64::from(r.is_intent()))
            .bind(e.prev_hash.clone())
            .bind(e.hash.clone());
    }
    for e in intents {
        query = query
            .bind(e.id.clone())
            .bind(e.seq as i64)
            .bind(writer_id.to_string());
    }
    for id in closing {
        query = query.bind(id.clone());
    }
    query
        .bind(last.seq as i64)
        .bind(last.hash.clone())
        .execute(conn)
        .await?;
    Ok(())
}

/// A record part as JSON text (record parts are plain data and always serialise).
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("audit record parts always serialise")
}

/// Read the head the store recorded and check it against the newest row.
/// A mismatch means the database was changed outside Tollgate: refuse to
/// extend the chain (fail closed) until an operator looks.
/// Both rows are read in ONE statement (one snapshot): another process may
/// commit between two separate reads.
pub(super) async fn load_head(conn: &mut SqliteConnection) -> Result<Head, StoreError> {
    type Pair = (Option<i64>, Option<String>);
    let (hs, hh, ns, nh): (Option<i64>, Option<String>, Option<i64>, Option<String>) =
        sqlx::query_as(
            "SELECT (SELECT seq FROM audit_head WHERE id = 1), \
                    (SELECT hash FROM audit_head WHERE id = 1), \
                    (SELECT seq FROM audit_events ORDER BY seq DESC LIMIT 1), \
                    (SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1)",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(write_err)?;
    let both = |p: Pair| match p {
        (Some(seq), Some(hash)) => Some((seq, hash)),
        _ => None,
    };
    let (recorded, newest) = (both((hs, hh)), both((ns, nh)));
    match (recorded, newest) {
        (None, None) => Ok(Head {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }),
        (Some(r), Some(n)) if r == n => Ok(Head {
            seq: r.0 as u64,
            hash: r.1,
        }),
        (r, n) => Err(StoreError::Unhealthy {
            reason: format!(
                "recorded chain head {} does not match the newest event {}: the audit log was modified \
                 outside Tollgate; run `tollgate audit verify`",
                r.map_or("(none)".to_string(), |(s, _)| format!("seq {s}")),
                n.map_or("(none)".to_string(), |(s, _)| format!("seq {s}")),
            ),
        }),
    }
}

fn write_err(e: sqlx::Error) -> StoreError {
    StoreError::Write {
        reason: e.to_string(),
    }
}
