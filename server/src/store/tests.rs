//! SQLite audit store: group commit under concurrency, durability across
//! reopen, tampering with the file by raw SQL, fail-closed writes, filters,
//! recordings (round trip, tampering, migration of a database from before them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use gateway_core::Principal;
use gateway_core::audit::{
    AuditEvent, AuditFilter, AuditRecord, AuditStore, BreakKind, ListOrder, OutcomeRecord,
    StoreError,
};
use gateway_core::connector::FieldPath;
use gateway_core::recording::{RecordedOutput, Recording, RenderedRecording};
use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, SqliteConnection};

use super::{DB_FILE, SqliteAuditStore, SqliteOptions, open_store};

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "tollgate-store-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rec(sub: &str, tool: &str, connection: Option<&str>, decision: &str) -> AuditRecord {
    AuditRecord {
        principal: Principal {
            sub: sub.into(),
            groups: vec!["agents".into()],
        },
        tool: tool.into(),
        connection: connection.map(Into::into),
        arguments: json!({"sql": "select * from orders where id = $1", "params": [42], "z": 1.25}),
        requests: vec![],
        decision: decision.into(),
        approval: None,
        outcome: OutcomeRecord {
            status: "ok".into(),
            duration_ms: 1,
            rows: Some(1),
            error: None,
        },
        result_preview: json!({"rows": [["***@example.com"]]}),
        masked: BTreeMap::from([("EMAIL".to_string(), 1)]),
        recording: None,
        intent: None,
    }
}

fn simple(i: usize) -> AuditRecord {
    rec(
        &format!("user{}", i % 4),
        "sql_query",
        Some("shop"),
        "allow",
    )
}

/// A separate connection on the file, as an attacker or operator with shell access would have.
async fn raw(dir: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(dir.join(DB_FILE))
        .connect()
        .await
        .unwrap()
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) {
    sqlx::raw_sql(sql).execute(conn).await.unwrap();
}

async fn fill(store: &SqliteAuditStore, n: usize) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(store.append(simple(i)).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_2000_events_from_32_tasks() {
    let dir = TempDir::new("group");
    let store = Arc::new(SqliteAuditStore::open(dir.path()).await.unwrap());

    // Baseline: one appender, strictly sequential (one transaction per event).
    let n1 = 200;
    let t = Instant::now();
    fill(&store, n1).await;
    let one = n1 as f64 / t.elapsed().as_secs_f64();
    assert_eq!(
        store.stats().transactions,
        n1 as u64,
        "a lone appender commits one by one"
    );

    // 32 concurrent appenders share transactions.
    let total = 2000;
    let next = Arc::new(AtomicUsize::new(0));
    let before = store.stats();
    let t = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (store, next) = (store.clone(), next.clone());
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    seqs.push(store.append(simple(seqs.len())).await.expect("append").seq);
                }
                seqs
            })
        })
        .collect();
    let mut seqs: Vec<u64> = Vec::new();
    for t in tasks {
        seqs.extend(t.await.unwrap());
    }
    let many = total as f64 / t.elapsed().as_secs_f64();
    let stats = store.stats();
    let txs = stats.transactions - before.transactions;
    println!(
        "audit append throughput: 1 appender {one:.0}/s; 32 appenders {many:.0}/s \
         ({total} events in {txs} transactions, largest batch {})",
        stats.largest_batch
    );

    seqs.sort_unstable();
    let want: Vec<u64> = (n1 as u64 + 1..=(n1 + total) as u64).collect();
    assert_eq!(seqs, want, "seqs contiguous, none lost or doubled");
    assert!(
        txs < total as u64,
        "batching happened: {txs} transactions for {total} events"
    );
    assert_eq!(stats.events, (n1 + total) as u64);

    let report = store.verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.checked, (n1 + total) as u64);

    // Durable and complete: export (paged) sees every event, in order.
    let all: Vec<AuditEvent> = store.export().try_collect().await.unwrap();
    assert_eq!(all.len(), n1 + total);
    assert!(
        all.windows(2)
            .all(|w| w[1].seq == w[0].seq + 1 && w[1].prev_hash == w[0].hash)
    );
}

#[tokio::test]
async fn reopen_after_drop_continues_the_chain() {
    let dir = TempDir::new("reopen");
    let first = {
        let store = SqliteAuditStore::open(dir.path()).await.unwrap();
        fill(&store, 10).await
    };
    let store = open_store(dir.path()).await.unwrap();
    let e = store.append(simple(0)).await.unwrap();
    assert_eq!(e.seq, 11);
    assert_eq!(e.prev_hash, first[9].hash);
    assert_eq!(
        store.get(&first[3].id).await.unwrap().as_ref(),
        Some(&first[3])
    );
    assert_eq!(store.get("nope").await.unwrap(), None);
    let report = store.verify().await.unwrap();
    assert!(report.is_intact() && report.checked == 11, "{report}");
    assert!(store.healthy().is_ok());
}

#[tokio::test]
async fn tamper_edit_a_field_is_named() {
    let dir = TempDir::new("edit");
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    fill(&store, 10).await;
    exec(
        &mut raw(dir.path()).await,
        "UPDATE audit_events SET decision = 'deny' WHERE seq = 7",
    )
    .await;
    let report = store.verify().await.unwrap();
    let b = report.first_break.clone().expect("edit detected");
    assert_eq!(b.seq, 7);
    assert!(matches!(b.kind, BreakKind::HashMismatch { .. }), "{b}");
    assert!(report.to_string().contains("seq 7"), "{report}");

    // A JSON column edited to something unreadable is a break too, not a crash.
    exec(
        &mut raw(dir.path()).await,
        "UPDATE audit_events SET arguments = '{oops' WHERE seq = 3",
    )
    .await;
    let b = store.verify().await.unwrap().first_break.unwrap();
    assert_eq!(b.seq, 3);
    assert!(matches!(b.kind, BreakKind::Unreadable { .. }), "{b}");
    let e = store
        .list(&AuditFilter {
            limit: Some(100),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { seq: 3, .. }), "{e}");
}

#[tokio::test]
async fn tamper_delete_a_row_is_detected() {
    let dir = TempDir::new("delete");
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    fill(&store, 10).await;
    let mut conn = raw(dir.path()).await;
    exec(&mut conn, "DELETE FROM audit_events WHERE seq = 4").await;
    let b = store.verify().await.unwrap().first_break.unwrap();
    assert_eq!(
        (b.seq, b.kind),
        (
            5,
            BreakKind::SeqGap {
                expected: 4,
                found: 5
            }
        )
    );

    // Deleting the newest events: caught by the recorded head.
    let dir = TempDir::new("delete-tail");
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    fill(&store, 10).await;
    exec(
        &mut raw(dir.path()).await,
        "DELETE FROM audit_events WHERE seq >= 9",
    )
    .await;
    let b = store.verify().await.unwrap().first_break.unwrap();
    assert_eq!(
        b.kind,
        BreakKind::TruncatedTail {
            recorded_seq: 10,
            last_seq: 8
        }
    );
    drop(store);
    // Reopened on a truncated log: refuses to extend the chain (fail closed), still verifiable.
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    assert!(matches!(store.healthy(), Err(StoreError::Unhealthy { .. })));
    assert!(store.append(simple(0)).await.is_err());
    assert!(!store.verify().await.unwrap().is_intact());
}

#[tokio::test]
async fn tamper_swap_two_rows_is_detected() {
    let dir = TempDir::new("swap");
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    fill(&store, 10).await;
    // Swap the full contents of seq 5 and 6 (each row keeps its position).
    let mut conn = raw(dir.path()).await;
    exec(
        &mut conn,
        "UPDATE audit_events SET seq = -5 WHERE seq = 5; \
         UPDATE audit_events SET seq = 5 WHERE seq = 6; \
         UPDATE audit_events SET seq = 6 WHERE seq = -5;",
    )
    .await;
    let b = store.verify().await.unwrap().first_break.unwrap();
    assert_eq!(b.seq, 5);
    assert!(matches!(b.kind, BreakKind::HashMismatch { .. }), "{b}");
}

#[tokio::test]
async fn unwritable_store_fails_closed_then_recovers() {
    let dir = TempDir::new("fail");
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    let before = fill(&store, 3).await;
    let mut conn = raw(dir.path()).await;

    // Every write to the table now fails inside SQLite (as a full or broken disk would).
    exec(
        &mut conn,
        "CREATE TRIGGER no_writes BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END;",
    )
    .await;
    let err = store
        .append(simple(0))
        .await
        .expect_err("append must not return Ok");
    assert!(
        matches!(&err, StoreError::Write { reason } if reason.contains("simulated write failure")),
        "{err}"
    );
    assert!(err.to_string().contains("NOT recorded"));
    assert!(matches!(store.healthy(), Err(StoreError::Unhealthy { .. })));
    // Concurrent appenders in failing batches all get errors.
    let results = futures::future::join_all((0..8).map(|i| store.append(simple(i)))).await;
    assert!(results.iter().all(Result::is_err));
    assert!(
        store.verify().await.unwrap().is_intact(),
        "nothing half-written"
    );

    // The disk "works again": the next append succeeds and the chain continues from seq 3.
    exec(&mut conn, "DROP TRIGGER no_writes").await;
    let e = store.append(simple(0)).await.unwrap();
    assert_eq!((e.seq, e.prev_hash.as_str()), (4, before[2].hash.as_str()));
    assert!(store.healthy().is_ok());

    // A poisoned event fails its whole batch but never the chain.
    exec(
        &mut conn,
        "CREATE TRIGGER poison BEFORE INSERT ON audit_events WHEN NEW.tool = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
    )
    .await;
    let appends = (0..30).map(|i| {
        let tool = if i == 15 { "poison" } else { "sql_query" };
        store.append(rec("u", tool, None, "allow"))
    });
    let results = futures::future::join_all(appends).await;
    assert!(results[15].is_err());
    let ok: Vec<u64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|e| e.seq))
        .collect();
    let mut sorted = ok.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (5..5 + ok.len() as u64).collect::<Vec<_>>(),
        "acked events are contiguous"
    );
    let report = store.verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.checked, 4 + ok.len() as u64);
    assert!(store.stats().failed_batches >= 3);
}

#[tokio::test]
async fn data_dir_removed_under_a_running_store_fails_closed() {
    let dir = TempDir::new("removed");
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    fill(&store, 3).await;
    std::fs::remove_dir_all(dir.path()).unwrap();
    // SQLite would happily keep writing to the unlinked file; we must not ack that.
    let err = store
        .append(simple(0))
        .await
        .expect_err("no Ok into a deleted file");
    assert!(err.to_string().contains("is gone"), "{err}");
    assert!(store.healthy().is_err());
    let err = store
        .put_recording(&rendered("x\n"))
        .await
        .expect_err("no recording acked into a deleted file");
    assert!(err.to_string().contains("replaced or removed"), "{err}");
    assert!(
        !dir.path().exists(),
        "nothing recreated behind the operator's back"
    );
}

#[tokio::test]
async fn lock_held_elsewhere_fails_the_append_instead_of_hanging() {
    let dir = TempDir::new("lock");
    let opts = SqliteOptions {
        busy_timeout: Duration::from_millis(200),
        ..SqliteOptions::default()
    };
    let store = SqliteAuditStore::open_with(dir.path(), opts).await.unwrap();
    fill(&store, 2).await;
    let mut other = raw(dir.path()).await;
    exec(&mut other, "BEGIN IMMEDIATE").await;
    let t = Instant::now();
    let err = store
        .append(simple(0))
        .await
        .expect_err("database is locked");
    assert!(matches!(err, StoreError::Write { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(3));
    exec(&mut other, "ROLLBACK").await;
    assert_eq!(store.append(simple(0)).await.unwrap().seq, 3);
    assert!(store.verify().await.unwrap().is_intact());
}

#[tokio::test]
async fn list_filters() {
    let dir = TempDir::new("list");
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    let specs = [
        ("alice", "sql_query", Some("shop"), "allow"),
        ("alice", "sql_schema", Some("shop"), "allow"),
        ("bob", "sql_query", Some("crm"), "deny"),
        ("bob", "list_connections", None, "allow"),
        ("carol", "sql_query", Some("shop"), "pending"),
        ("alice", "sql_query", Some("crm"), "error"),
    ];
    let mut events = Vec::new();
    for (sub, tool, conn, decision) in specs {
        events.push(store.append(rec(sub, tool, conn, decision)).await.unwrap());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let seqs = |v: Vec<AuditEvent>| v.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    let q = |f: AuditFilter| {
        let store = &store;
        async move { seqs(store.list(&f).await.unwrap()) }
    };

    assert_eq!(
        q(AuditFilter::default()).await,
        [6, 5, 4, 3, 2, 1],
        "newest first by default"
    );
    assert_eq!(
        q(AuditFilter {
            principal: Some("alice".into()),
            ..Default::default()
        })
        .await,
        [6, 2, 1]
    );
    assert_eq!(
        q(AuditFilter {
            tool: Some("sql_query".into()),
            ..Default::default()
        })
        .await,
        [6, 5, 3, 1]
    );
    assert_eq!(
        q(AuditFilter {
            connection: Some("crm".into()),
            ..Default::default()
        })
        .await,
        [6, 3]
    );
    assert_eq!(
        q(AuditFilter {
            decision: Some("deny".into()),
            ..Default::default()
        })
        .await,
        [3]
    );
    assert_eq!(
        q(AuditFilter {
            principal: Some("alice".into()),
            connection: Some("shop".into()),
            ..Default::default()
        })
        .await,
        [2, 1]
    );
    assert_eq!(
        q(AuditFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await,
        [6, 5]
    );
    assert_eq!(
        q(AuditFilter {
            after_seq: Some(3),
            limit: Some(2),
            order: ListOrder::OldestFirst,
            ..Default::default()
        })
        .await,
        [4, 5]
    );
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(&events[i].time)
            .unwrap()
            .to_utc()
    };
    assert_eq!(
        q(AuditFilter {
            since: Some(at(3)),
            ..Default::default()
        })
        .await,
        [6, 5, 4]
    );
    assert_eq!(
        q(AuditFilter {
            until: Some(at(1)),
            ..Default::default()
        })
        .await,
        [2, 1]
    );
    assert_eq!(
        q(AuditFilter {
            since: Some(at(1)),
            until: Some(at(2)),
            ..Default::default()
        })
        .await,
        [3, 2]
    );
    assert!(
        q(AuditFilter {
            principal: Some("nobody".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    // A listed event is the stored event, whole.
    assert_eq!(
        store
            .list(&AuditFilter {
                limit: Some(1),
                ..Default::default()
            })
            .await
            .unwrap()[0],
        events[5]
    );
}

#[tokio::test]
async fn open_errors_are_actionable() {
    let dir = TempDir::new("open");
    std::fs::create_dir_all(dir.path()).unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = SqliteAuditStore::open(&file)
        .await
        .err()
        .expect("a file is not a data_dir");
    assert!(
        matches!(&err, StoreError::Open { location, .. } if location.contains("not-a-dir")),
        "{err}"
    );

    let missing = dir.path().join("missing");
    let err = super::open_existing_store(&missing)
        .await
        .err()
        .expect("no database there");
    assert!(err.to_string().contains("no audit database"), "{err}");
    assert!(!missing.exists(), "open_existing creates nothing");

    // A database from a newer tollgate is refused, not silently used.
    let newer = dir.path().join("newer");
    drop(SqliteAuditStore::open(&newer).await.unwrap());
    let mut conn = raw(&newer).await;
    exec(&mut conn, "PRAGMA user_version = 999").await;
    let err = SqliteAuditStore::open(&newer)
        .await
        .err()
        .expect("newer schema");
    assert!(
        err.to_string().contains("newer than this tollgate"),
        "{err}"
    );
}

#[tokio::test]
async fn database_is_wal_with_full_sync() {
    let dir = TempDir::new("pragmas");
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!((mode.as_str(), sync), ("wal", 2), "WAL + synchronous=FULL");
    assert_eq!(store.path(), dir.path().join(DB_FILE));
}

/// Two processes on one embedded store (the demo's HTTP server and a
/// `serve --stdio` beside it): each writer's cached head goes stale when the
/// other appends; its batch is resealed on the head on disk, so every append
/// lands, in one unbroken chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_share_one_chain() {
    let dir = TempDir::new("two-writers");
    let a = SqliteAuditStore::open(dir.path()).await.unwrap();
    let b = SqliteAuditStore::open(dir.path()).await.unwrap();
    // Alternating: every append after the first finds the other's events.
    for i in 0..10 {
        a.append(simple(i)).await.unwrap();
        b.append(simple(100 + i)).await.unwrap();
    }
    // Concurrent.
    let (ra, rb) = tokio::join!(fill(&a, 40), fill(&b, 40));
    assert_eq!(ra.len() + rb.len(), 80);
    let all: Vec<AuditEvent> = a.export().try_collect().await.unwrap();
    assert_eq!(all.len(), 100);
    assert!(
        all.windows(2)
            .all(|w| w[1].seq == w[0].seq + 1 && w[1].prev_hash == w[0].hash)
    );
    let report = b.verify().await.unwrap();
    assert!(report.is_intact() && report.checked == 100, "{report}");
}

/// A masked recording as the pipeline hands it to the store.
fn rendered(text: &str) -> RenderedRecording {
    RenderedRecording::new(&Recording {
        width: 80,
        height: 24,
        timestamp: 1_700_000_000,
        command: "uptime".into(),
        title: "ssh web-1".into(),
        events: vec![RecordedOutput {
            at: Duration::from_millis(20),
            field: FieldPath::new(["stdout"]),
            text: text.into(),
        }],
    })
}

/// Store `recording`, then an event naming it (the pipeline's order).
async fn append_recorded(store: &SqliteAuditStore, recording: &RenderedRecording) -> AuditEvent {
    store.put_recording(recording).await.unwrap();
    let mut record = simple(0);
    record.tool = "ssh_exec".into();
    record.recording = Some(recording.reference.clone());
    store.append(record).await.unwrap()
}

#[tokio::test]
async fn recordings_round_trip_and_verify() {
    let dir = TempDir::new("recording");
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    fill(&store, 2).await;
    let r = rendered(" 10:00:01 up 3 days\n");
    let event = append_recorded(&store, &r).await;
    fill(&store, 2).await;
    // The same output again: one stored file, named by both events.
    let again = append_recorded(&store, &r).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM recordings")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1);

    let back = store.get(&event.id).await.unwrap().unwrap();
    assert_eq!(back, event, "the column reads back into the same event");
    assert_eq!(back.record.recording.as_ref(), Some(&r.reference));
    assert_eq!(
        store
            .get(&again.id)
            .await
            .unwrap()
            .unwrap()
            .record
            .recording,
        Some(r.reference.clone())
    );
    assert_eq!(
        store.recording(&r.reference.sha256).await.unwrap(),
        Some(r.body.clone())
    );
    assert_eq!(store.recording(&"0".repeat(64)).await.unwrap(), None);
    let report = store.verify().await.unwrap();
    assert!(report.is_intact() && report.checked == 6, "{report}");

    // Durable across reopen.
    drop(store);
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    assert_eq!(
        store.recording(&r.reference.sha256).await.unwrap(),
        Some(r.body)
    );
    assert!(store.verify().await.unwrap().is_intact());
}

#[tokio::test]
async fn an_edited_recording_fails_verify_and_is_not_named_again() {
    let dir = TempDir::new("recording-edit");
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    fill(&store, 3).await;
    let r = rendered("card [CREDIT_CARD]\n");
    let event = append_recorded(&store, &r).await;
    fill(&store, 3).await;
    // The body swapped for another (size kept, so only the hash tells).
    let forged = String::from_utf8(r.body.clone())
        .unwrap()
        .replace("[CREDIT_CARD]", "4111111111111")
        .into_bytes();
    assert_eq!(forged.len(), r.body.len());
    sqlx::query("UPDATE recordings SET body = ? WHERE sha256 = ?")
        .bind(&forged)
        .bind(&r.reference.sha256)
        .execute(&mut raw(dir.path()).await)
        .await
        .unwrap();
    let report = store.verify().await.unwrap();
    let b = report
        .first_break
        .clone()
        .expect("an edited recording is a break");
    assert_eq!((b.seq, b.id.as_deref()), (4, Some(event.id.as_str())));
    assert!(
        matches!(&b.kind, BreakKind::RecordingMismatch { sha256, .. } if *sha256 == r.reference.sha256),
        "{b}"
    );
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "chain BROKEN at seq 4 (id {}): the event's recording {} was modified: the stored file hashes to {}",
            event.id,
            r.reference.sha256,
            gateway_core::audit::sha256_hex(&forged)
        )),
        "{text}"
    );
    assert_eq!(
        report.last_seq,
        Some(3),
        "the last intact event is before it"
    );

    // The same output again is refused, not named on top of a forged file.
    let e = store.put_recording(&r).await.unwrap_err();
    assert!(e.to_string().contains("was modified"), "{e}");
    assert!(e.to_string().contains("audit verify"), "{e}");

    // A changed size alone is a break too.
    sqlx::query("UPDATE recordings SET body = ? WHERE sha256 = ?")
        .bind([r.body.as_slice(), b" "].concat())
        .bind(&r.reference.sha256)
        .execute(&mut raw(dir.path()).await)
        .await
        .unwrap();
    let b = store.verify().await.unwrap().first_break.unwrap();
    assert!(matches!(b.kind, BreakKind::RecordingMismatch { .. }), "{b}");

    // The original back: intact again.
    sqlx::query("UPDATE recordings SET body = ? WHERE sha256 = ?")
        .bind(&r.body)
        .bind(&r.reference.sha256)
        .execute(&mut raw(dir.path()).await)
        .await
        .unwrap();
    assert!(store.verify().await.unwrap().is_intact());
}

#[tokio::test]
async fn a_deleted_recording_or_an_edited_reference_fails_verify() {
    let dir = TempDir::new("recording-delete");
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    fill(&store, 2).await;
    let r = rendered("ok\n");
    append_recorded(&store, &r).await;
    exec(&mut raw(dir.path()).await, "DELETE FROM recordings").await;
    let report = store.verify().await.unwrap();
    let b = report
        .first_break
        .clone()
        .expect("a deleted recording is a break");
    assert_eq!(b.seq, 3);
    assert!(
        report.to_string().contains(&format!(
            "the event's recording {} is missing from the store: it was deleted",
            r.reference.sha256
        )),
        "{report}"
    );

    // Pointing the event at another stored file: the event's hash breaks.
    let other = rendered("other\n");
    store.put_recording(&other).await.unwrap();
    sqlx::query("UPDATE audit_events SET recording = ? WHERE seq = 3")
        .bind(serde_json::to_string(&other.reference).unwrap())
        .execute(&mut raw(dir.path()).await)
        .await
        .unwrap();
    let b = store.verify().await.unwrap().first_break.unwrap();
    assert_eq!(b.seq, 3);
    assert!(matches!(b.kind, BreakKind::HashMismatch { .. }), "{b}");
    // Removing the reference from the event: the same.
    exec(
        &mut raw(dir.path()).await,
        "UPDATE audit_events SET recording = NULL WHERE seq = 3",
    )
    .await;
    let b = store.verify().await.unwrap().first_break.unwrap();
    assert!(matches!(b.kind, BreakKind::HashMismatch { .. }), "{b}");
}

/// A database exactly as the binary before recordings left it: schema
/// version 2, events in the 16-column rows its writer inserted, then
/// opened by this one: migrated in place, old events still verify beside
/// new ones that name recordings.
#[tokio::test]
async fn a_database_from_before_recordings_migrates_and_still_verifies() {
    let dir = TempDir::new("recording-migrate");
    std::fs::create_dir_all(dir.path()).unwrap();
    let mut conn = SqliteConnectOptions::new()
        .filename(dir.path().join(DB_FILE))
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    for m in super::MIGRATIONS.iter().filter(|m| m.version <= 2) {
        sqlx::raw_sql(m.sql).execute(&mut conn).await.unwrap();
    }
    exec(&mut conn, "PRAGMA user_version = 2").await;
    let mut prev = gateway_core::audit::GENESIS_HASH.to_string();
    let mut old = vec![];
    for seq in 1..=3u64 {
        let e = AuditEvent::seal(
            simple(seq as usize),
            format!("old-{seq}"),
            seq,
            format!("2026-01-0{seq}T00:00:00.000000Z"),
            prev.clone(),
        );
        let r = &e.record;
        sqlx::query(
            "INSERT INTO audit_events (seq, id, time, principal_sub, principal_groups, tool, connection, \
             arguments, requests, decision, approval, outcome, result_preview, masked, prev_hash, hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
        )
        .bind(seq as i64)
        .bind(&e.id)
        .bind(&e.time)
        .bind(&r.principal.sub)
        .bind(serde_json::to_string(&r.principal.groups).unwrap())
        .bind(&r.tool)
        .bind(&r.connection)
        .bind(serde_json::to_string(&r.arguments).unwrap())
        .bind(serde_json::to_string(&r.requests).unwrap())
        .bind(&r.decision)
        .bind(serde_json::to_string(&r.outcome).unwrap())
        .bind(serde_json::to_string(&r.result_preview).unwrap())
        .bind(serde_json::to_string(&r.masked).unwrap())
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .execute(&mut conn)
        .await
        .unwrap();
        prev = e.hash.clone();
        old.push(e);
    }
    sqlx::query("INSERT INTO audit_head (id, seq, hash) VALUES (1, 3, ?)")
        .bind(&prev)
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);

    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(version, super::MIGRATIONS.last().unwrap().version);
    assert!(version >= 3);
    let report = store.verify().await.unwrap();
    assert!(report.is_intact() && report.checked == 3, "{report}");
    let back = store.get("old-2").await.unwrap().unwrap();
    assert_eq!(
        back, old[1],
        "an old event reads back unchanged, no recording"
    );
    assert!(
        !serde_json::to_string(&back).unwrap().contains("recording"),
        "an old event shows no recording member"
    );
    let r = rendered("new\n");
    let event = append_recorded(&store, &r).await;
    assert_eq!((event.seq, event.prev_hash.as_str()), (4, prev.as_str()));
    store.append(simple(5)).await.unwrap();
    let report = store.verify().await.unwrap();
    assert!(report.is_intact() && report.checked == 5, "{report}");
}

fn intent_record(i: usize) -> AuditRecord {
    let mut r = simple(i);
    r.outcome.status = gateway_core::audit::intent::INTENT_STATUS.into();
    r.result_preview = serde_json::Value::Null;
    r
}

fn closing(i: usize, intent: &AuditEvent) -> AuditRecord {
    let mut r = simple(i);
    r.intent = Some(intent.id.clone());
    r
}

#[tokio::test]
async fn intents_are_chained_listed_only_on_request_and_closed_by_their_event() {
    let dir = TempDir::new("intents");
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    let intent = store.append(intent_record(1)).await.unwrap();
    let event = store.append_written(closing(1, &intent)).await.unwrap();
    store.sync().await.unwrap();
    let listed = store.list(&AuditFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 1, "one event per call");
    assert_eq!(listed[0].id, event.id);
    assert_eq!(listed[0].record.intent.as_deref(), Some(intent.id.as_str()));
    let all = store
        .list(&AuditFilter {
            intents: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let report = store.verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.open_intents, 0);
    // The intent link is part of the hashed event.
    let mut raw = raw(dir.path()).await;
    exec(
        &mut raw,
        "UPDATE audit_events SET intent = 'forged' WHERE seq = 2",
    )
    .await;
    let b = store.verify().await.unwrap().first_break.expect("a break");
    assert!(matches!(b.kind, BreakKind::HashMismatch { .. }), "{b}");
}

#[tokio::test]
async fn a_dead_writers_open_intents_are_closed_as_unknown_and_a_live_writers_are_not() {
    let dir = TempDir::new("unfinished");
    let crashed = SqliteAuditStore::open(dir.path()).await.unwrap();
    let lost = crashed.append(intent_record(1)).await.unwrap();
    let live = SqliteAuditStore::open(dir.path()).await.unwrap();
    let running = live.append(intent_record(2)).await.unwrap();

    let starting = SqliteAuditStore::open(dir.path()).await.unwrap();
    // Both writers still hold their locks: nothing is theirs to close.
    assert!(starting.unfinished_intents().await.unwrap().is_empty());
    // The first one dies (its lock goes with it, as with kill -9).
    drop(crashed);
    let found = starting.unfinished_intents().await.unwrap();
    assert_eq!(
        found.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        vec![lost.id.as_str()]
    );
    let closed = gateway_core::audit::intent::close_unfinished(&starting)
        .await
        .unwrap();
    assert_eq!(closed, 1);
    assert!(starting.unfinished_intents().await.unwrap().is_empty());
    let report = starting.verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.outcomes_unknown, 1, "{report}");
    assert_eq!(
        report.open_intents, 1,
        "the live writer's call is in flight"
    );
    // The live writer finishes its call; nothing is left open.
    live.append_written(closing(2, &running)).await.unwrap();
    let report = starting.verify().await.unwrap();
    assert_eq!((report.open_intents, report.outcomes_unknown), (0, 1));
}

#[tokio::test]
async fn written_events_survive_reopen_and_share_the_next_flush() {
    let dir = TempDir::new("written");
    {
        let store = SqliteAuditStore::open(dir.path()).await.unwrap();
        for i in 0..20 {
            store.append_written(simple(i)).await.unwrap();
        }
        store.append(simple(99)).await.unwrap();
    }
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    let report = store.verify().await.unwrap();
    assert!(report.is_intact() && report.checked == 21, "{report}");
}

/// The console's keyset pages (`before_seq`) and free text (tool or
/// arguments, case-insensitive, `%`/`_` literal, never SQL).
#[tokio::test]
async fn list_pages_back_by_seq_and_searches_text() {
    let dir = TempDir::new("text");
    let store = SqliteAuditStore::open(dir.path()).await.unwrap();
    for (i, sql) in [
        "SELECT 1",
        "DELETE FROM Orders WHERE id = 7",
        "SELECT '100%' FROM t",
        "SELECT a_b FROM t",
        "SELECT x' OR 1=1 --",
    ]
    .iter()
    .enumerate()
    {
        let mut r = rec(
            "alice",
            if i == 0 { "sql_schema" } else { "sql_query" },
            Some("shop"),
            "allow",
        );
        r.arguments = json!({"sql": sql});
        store.append(r).await.unwrap();
    }
    let seqs = |f: AuditFilter| {
        let store = &store;
        async move {
            store
                .list(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        }
    };
    let text = |t: &str| AuditFilter {
        text: Some(t.into()),
        ..Default::default()
    };
    assert_eq!(
        seqs(AuditFilter {
            before_seq: Some(4),
            limit: Some(2),
            ..Default::default()
        })
        .await,
        [3, 2],
        "newest first below the keyset"
    );
    assert_eq!(seqs(text("orders")).await, [2], "case-insensitive");
    assert_eq!(seqs(text("SCHEMA")).await, [1], "the tool name too");
    assert_eq!(seqs(text("100%")).await, [3], "% is literal");
    assert_eq!(seqs(text("a_b")).await, [4], "_ is literal");
    assert_eq!(seqs(text("%")).await, [3], "% alone matches only a %");
    assert_eq!(seqs(text("x' OR 1=1 --")).await, [5], "bound, never SQL");
    assert_eq!(
        seqs(AuditFilter {
            text: Some("select".into()),
            before_seq: Some(5),
            ..Default::default()
        })
        .await,
        [4, 3, 1]
    );
}
