//! Write-ahead audit on a real PostgreSQL (gateway_core::audit::intent):
//! a write whose every effect the transaction can undo runs while its intent
//! is written and commits only after it (the store sees the statement's
//! transaction open while it writes the intent); a statement that may act
//! outside its transaction (a user function) does not start before its
//! intent is durable; an intent that cannot be recorded rolls the write
//! back. The store is the real SQLite store behind a wrapper that watches
//! the target while it writes intents.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use gateway_core::approval::CallContext;
use gateway_core::audit::{
    AuditEvent, AuditFilter, AuditRecord, AuditStore, EventStream, StoreError, VerifyReport,
};
use gateway_core::policy::{Mode, PolicyEngine, load_sources};
use gateway_core::{GatewayBuilder, Principal};
use serde_json::json;
use tollgate_server::store::SqliteAuditStore;
use tollgate_tests::PgServer;
use tollgate_tests::util::TempDir;

const FIXTURE: &str = r#"
CREATE TABLE wa_marks (id int PRIMARY KEY, note text);
CREATE FUNCTION wa_mark(n int) RETURNS int LANGUAGE sql VOLATILE AS $$ SELECT pg_catalog.pg_sleep(0.5); SELECT n $$;
"#;

const POLICY: &str = r#"permit(principal in Tollgate::Group::"agents", action, resource);"#;

/// What the wrapper does when asked to append an intent.
#[derive(Clone, Copy, PartialEq)]
enum OnIntent {
    /// Wait (up to 5 s) until the target shows the call's transaction open,
    /// then write it: proves the statement ran before its intent was durable.
    AwaitOpenTransaction,
    /// Watch the target for 300 ms while holding the intent: the call's
    /// statement must not appear.
    HoldAndWatch,
    /// Fail (a full disk).
    Fail,
}

struct Watching {
    inner: SqliteAuditStore,
    url: String,
    on_intent: Mutex<OnIntent>,
    seen: Mutex<Vec<String>>,
}

impl Watching {
    /// Backends other than ours running or holding a transaction on `wa_marks`.
    async fn busy_on_marks(&self) -> i64 {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
                 AND state IN ('active', 'idle in transaction') AND query ILIKE '%wa_mark%'",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }
}

#[async_trait]
impl AuditStore for Watching {
    async fn append(&self, record: AuditRecord) -> Result<AuditEvent, StoreError> {
        if record.is_intent() {
            let mode = *self.on_intent.lock().unwrap();
            match mode {
                OnIntent::Fail => {
                    return Err(StoreError::Write {
                        reason: "No space left on device (test)".into(),
                    });
                }
                OnIntent::AwaitOpenTransaction => {
                    let mut seen = "intent written with no open transaction on the target";
                    for _ in 0..100 {
                        if self.busy_on_marks().await > 0 {
                            seen = "intent written while the call's transaction was open";
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    self.seen.lock().unwrap().push(seen.into());
                }
                OnIntent::HoldAndWatch => {
                    let mut seen = "nothing ran before the intent";
                    for _ in 0..6 {
                        if self.busy_on_marks().await > 0 {
                            seen = "the statement ran before its intent was durable";
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    self.seen.lock().unwrap().push(seen.into());
                }
            }
        }
        self.inner.append(record).await
    }
    async fn append_written(&self, record: AuditRecord) -> Result<AuditEvent, StoreError> {
        self.inner.append_written(record).await
    }
    async fn get(&self, id: &str) -> Result<Option<AuditEvent>, StoreError> {
        self.inner.get(id).await
    }
    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.list(filter).await
    }
    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.inner.verify().await
    }
    fn healthy(&self) -> Result<(), StoreError> {
        self.inner.healthy()
    }
    fn export(&self) -> EventStream {
        self.inner.export()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writes_commit_only_after_their_intent_is_durable() {
    let server = PgServer::start().expect("start PostgreSQL");
    let url = server.create_database("wa", FIXTURE).expect("fixture");
    let dir = TempDir::new("write-ahead").unwrap();
    let store = Arc::new(Watching {
        inner: SqliteAuditStore::open(dir.path()).await.unwrap(),
        url: url.clone(),
        on_intent: Mutex::new(OnIntent::AwaitOpenTransaction),
        seen: Mutex::new(Vec::new()),
    });
    let policy = PolicyEngine::new(
        tollgate_server::app::policy_schema().unwrap(),
        &load_sources(vec![("p.cedar".into(), POLICY.into())]),
    )
    .unwrap();
    let conn = tollgate_tests::connector(
        "postgres",
        "shop",
        json!({"name": "shop", "kind": "postgres", "url": url, "statement_timeout": "10s"}),
    );
    let gw = GatewayBuilder::new(policy, store.clone())
        .mode(Mode::Enforce)
        .connection(conn)
        .build()
        .unwrap();
    let agent = Principal {
        sub: "bot".into(),
        groups: vec!["agents".into()],
    };
    let count = |sql: &str| -> i64 { server.psql("wa", sql).unwrap().trim().parse().unwrap() };
    let run = |sql: &'static str| {
        let gw = &gw;
        let agent = &agent;
        async move {
            gw.call(
                agent,
                "sql_query",
                json!({"connection": "shop", "sql": sql}),
                &CallContext::default(),
            )
            .await
        }
    };

    // A plain INSERT: its transaction is open (not committed: no row
    // visible) while the intent is written, and it commits after.
    let r = run("INSERT INTO wa_marks VALUES (1, 'plain')").await;
    assert!(!r.is_error, "{r:?}");
    assert_eq!(
        store.seen.lock().unwrap().pop().as_deref(),
        Some("intent written while the call's transaction was open")
    );
    assert_eq!(count("SELECT count(*) FROM wa_marks WHERE id = 1"), 1);

    // A user function may act outside the transaction: nothing is sent
    // before its intent is durable (it runs for 0.5 s, so the watch, 300 ms
    // from the intent's start, would see it if it had been sent).
    *store.on_intent.lock().unwrap() = OnIntent::HoldAndWatch;
    let r = run("SELECT wa_mark(2)").await;
    assert!(!r.is_error, "{r:?}");
    assert_eq!(
        store.seen.lock().unwrap().pop().as_deref(),
        Some("nothing ran before the intent")
    );
    assert_eq!(r.structured["rows"], json!([[2]]));

    // The intent cannot be recorded: the overlapped INSERT is rolled back,
    // and the function call is refused.
    *store.on_intent.lock().unwrap() = OnIntent::Fail;
    for sql in [
        "INSERT INTO wa_marks VALUES (3, 'lost')",
        "SELECT wa_mark(4)",
    ] {
        let r = gw
            .call(
                &agent,
                "sql_query",
                json!({"connection": "shop", "sql": sql}),
                &CallContext::default(),
            )
            .await;
        assert!(r.is_error, "{sql}: {r:?}");
        assert_eq!(r.structured["error"]["code"], "audit_unavailable", "{r:?}");
    }
    assert_eq!(count("SELECT count(*) FROM wa_marks WHERE id = 3"), 0);

    // Every executed call: an intent, then its event naming it; the refused
    // ones have an event and no intent; the chain verifies with none open.
    let all = store
        .list(&AuditFilter {
            intents: true,
            limit: Some(100),
            order: gateway_core::audit::ListOrder::OldestFirst,
            ..Default::default()
        })
        .await
        .unwrap();
    let intents: Vec<_> = all.iter().filter(|e| e.record.is_intent()).collect();
    let events: Vec<_> = all.iter().filter(|e| !e.record.is_intent()).collect();
    assert_eq!((intents.len(), events.len()), (2, 4), "{all:#?}");
    for (intent, event) in intents.iter().zip(&events) {
        assert_eq!(event.record.intent.as_deref(), Some(intent.id.as_str()));
        assert!(intent.seq < event.seq);
    }
    assert!(events[2..].iter().all(|e| e.record.intent.is_none()));
    let report = store.verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.open_intents, 0, "{report}");
}
