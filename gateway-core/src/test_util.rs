//! Test fakes shared by the core's tests: an in-memory audit store that can
//! be told to fail, a connector that records whether it executed, and the
//! policy schema its requests are checked against (the core's fragment plus
//! the SQL family's, read from `schemas/`: the core cannot depend on the
//! family's crate).
//! Compiled only for tests (and the `test-util` feature), never shipped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::access::{AccessRequest, ContextValue, Resource};
use crate::audit::{
    AuditEvent, AuditFilter, AuditRecord, AuditStore, BreakKind, ChainVerifier, EventStream,
    GENESIS_HASH, OutcomeRecord, StoreError, VerifyReport,
};
use crate::connector::{
    AnalysisError, ConnectionInfo, Connector, ExecLimits, ExecuteError, FieldOrigin, FieldPath,
    IntentOrder, ItemGuard, Plan, ToolOutput, ToolSpec,
};
use crate::identity::Principal;
use crate::policy::{PolicySchema, Vocabulary};
use crate::recording::{RecordedOutput, Recording};
use crate::review::{ReviewItem, ReviewSummary, ReviewText};

/// The SQL family's vocabulary, as `tools/sql` ships it.
pub const SQL_VOCABULARY: Vocabulary = Vocabulary {
    family: "sql",
    fragment: include_str!("../../schemas/sql.cedarschema"),
    unmask_resources: &["Table"],
};

/// The core's schema combined with the SQL family's.
pub fn policy_schema() -> Arc<PolicySchema> {
    Arc::new(PolicySchema::combine(&[SQL_VOCABULARY]).expect("the shipped fragments combine"))
}

/// `Tollgate::Table::"<connection>/<schema>.<table>"`, `in` its connection.
pub fn table_resource(connection: &str, schema: &str, table: &str) -> Resource {
    Resource::new("Table", format!("{connection}/{schema}.{table}"))
        .within(Resource::connection(connection))
}

/// An in-memory, hash-chained audit store.
#[derive(Default)]
pub struct MemoryStore {
    /// Stored events.
    pub events: Mutex<Vec<AuditEvent>>,
    /// When set, appends fail and `healthy` reports it.
    pub broken: AtomicBool,
    /// Stored recordings by SHA-256.
    pub recordings: Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
    /// When set, every append waits this long first (a slow disk).
    pub append_delay: Mutex<Option<std::time::Duration>>,
    /// When set, appends of write-ahead intents fail (and only those).
    pub intents_fail: AtomicBool,
    /// When set, appends of executed calls' events (records naming an
    /// intent) fail (and only those).
    pub events_fail: AtomicBool,
}

impl MemoryStore {
    /// The one event per call, without the write-ahead intent entries.
    pub fn calls(&self) -> Vec<AuditEvent> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|e| !e.record.is_intent())
            .cloned()
            .collect()
    }

    /// The write-ahead intent entries.
    pub fn intents(&self) -> Vec<AuditEvent> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e.record.is_intent())
            .cloned()
            .collect()
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append(&self, record: AuditRecord) -> Result<AuditEvent, StoreError> {
        let delay = *self.append_delay.lock().unwrap();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if record.is_intent() && self.intents_fail.load(Ordering::SeqCst) {
            return Err(StoreError::Write {
                reason: "intent write failed (test)".into(),
            });
        }
        if record.intent.is_some() && self.events_fail.load(Ordering::SeqCst) {
            return Err(StoreError::Write {
                reason: "event write failed (test)".into(),
            });
        }
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Write {
                reason: "disk full (test)".into(),
            });
        }
        let mut events = self.events.lock().unwrap();
        let prev = events
            .last()
            .map(|e| e.hash.clone())
            .unwrap_or_else(|| GENESIS_HASH.to_string());
        let event = AuditEvent::seal(
            record,
            format!("ev{}", events.len() + 1),
            events.len() as u64 + 1,
            "2026-01-01T00:00:00Z".into(),
            prev,
        );
        events.push(event.clone());
        Ok(event)
    }
    async fn get(&self, id: &str) -> Result<Option<AuditEvent>, StoreError> {
        Ok(self
            .events
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.id == id)
            .cloned())
    }
    /// Honours `after_seq`, `order`, `limit` (paging) and `intents`; the
    /// other filters are ignored.
    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let after = filter.after_seq.unwrap_or(0);
        let mut events: Vec<AuditEvent> = self
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.seq > after)
            .filter(|e| filter.before_seq.is_none_or(|b| e.seq < b))
            .filter(|e| filter.intents || !e.record.is_intent())
            .filter(|e| filter.text_matches(e))
            .cloned()
            .collect();
        if filter.order == crate::audit::ListOrder::NewestFirst {
            events.reverse();
        }
        events.truncate(filter.effective_limit() as usize);
        Ok(events)
    }
    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        // The chain, and each event's recording as a store must check it.
        let events = self.events.lock().unwrap();
        let recordings = self.recordings.lock().unwrap();
        let mut v = ChainVerifier::new();
        for e in events.iter() {
            let beside = e.record.recording.as_ref().and_then(|r| {
                BreakKind::of_recording(r, recordings.get(&r.sha256).map(Vec::as_slice))
            });
            if !v.push_checked(e, beside) {
                break;
            }
        }
        Ok(v.finish(None))
    }
    fn healthy(&self) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            Err(StoreError::Unhealthy {
                reason: "disk full (test)".into(),
            })
        } else {
            Ok(())
        }
    }
    fn export(&self) -> EventStream {
        let events = self.events.lock().unwrap().clone();
        futures::stream::iter(events.into_iter().map(Ok)).boxed()
    }
    async fn put_recording(
        &self,
        recording: &crate::recording::RenderedRecording,
    ) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Write {
                reason: "disk full (test)".into(),
            });
        }
        self.recordings
            .lock()
            .unwrap()
            .insert(recording.reference.sha256.clone(), recording.body.clone());
        Ok(())
    }
    async fn recording(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.recordings.lock().unwrap().get(sha256).cloned())
    }
}

/// The raw values in the output of payload `RECORDED` (result and
/// recording): none may reach the caller, the record or the recording.
pub const RECORDED_RAW: &[&str] = &["alice@example.com", "4111 1111 1111 1111", "10.1.2.3"];

/// Messages payload `PROGRESS` reports, in order.
pub const PROGRESS_MESSAGES: &[&str] = &[
    "running 0s, 0 bytes",
    "running 1s, 40 bytes",
    "running 2s, 80 bytes",
];

/// A connector whose "SQL" is a word: `read`, `write` or `garbage`; it
/// returns one row holding `payload` and counts executions (payload `FAIL`:
/// a target error; `PANIC`: execution panics, like a connector bug;
/// `NESTED`: a list of nested objects, not rows, whose fields it names as
/// `Widget.<keys>`; `BARE`: a bare JSON array, not an object; `HANG`: runs
/// until the call is cancelled or its time budget ends; `RECORDED`: a
/// command's output, as SSH returns it, with a terminal recording of the
/// same output holding the [`RECORDED_RAW`] values; `PROGRESS`: reports
/// [`PROGRESS_MESSAGES`] through `limits.progress` while it runs).
pub struct FakeConnector {
    info: ConnectionInfo,
    /// Executions so far.
    pub executed: AtomicUsize,
    /// The value returned in the single row. `GUARDED` returns two listed
    /// items instead, guarded by `sql:select` on `<name>/main.t` and on
    /// `secret-db/main.x`.
    pub payload: String,
    /// The limits of the last execution.
    pub last_limits: Mutex<Option<ExecLimits>>,
    /// Set when a `HANG` execution was told to stop (and stopped).
    pub stopped: AtomicBool,
    /// The state of the fake target, shown in every review (as a family
    /// whose review reads the target shows it): changing it changes what
    /// the same arguments would do.
    pub target: Mutex<String>,
    /// When set, the fake says its effects wait for the write-ahead intent
    /// ([`IntentOrder::BeforeCommit`]) and awaits it before "committing".
    pub overlap: AtomicBool,
    /// What the last execution found, in order: whether the intent was
    /// already durable when it started, and (overlapping) how the gate
    /// resolved.
    pub intent_seen: Mutex<Vec<String>>,
    /// The store the fake looks at when it starts (to see the intent).
    pub watch: Mutex<Option<Arc<MemoryStore>>>,
}

impl FakeConnector {
    /// A fake connection named `name`.
    pub fn new(name: &str, payload: &str) -> Self {
        FakeConnector {
            info: ConnectionInfo {
                name: name.into(),
                kind: "fake".into(),
                description: "test".into(),
            },
            executed: AtomicUsize::new(0),
            payload: payload.into(),
            last_limits: Mutex::new(None),
            target: Mutex::new(String::new()),
            stopped: AtomicBool::new(false),
            overlap: AtomicBool::new(false),
            intent_seen: Mutex::new(Vec::new()),
            watch: Mutex::new(None),
        }
    }
}

fn ctx(stmt: &str, has_where: bool) -> std::collections::BTreeMap<String, ContextValue> {
    [
        ("statement".to_string(), ContextValue::String(stmt.into())),
        ("has_where".to_string(), ContextValue::Bool(has_where)),
        (
            "tables".to_string(),
            ContextValue::StringSet(["main.t".to_string()].into()),
        ),
        (
            "functions".to_string(),
            ContextValue::StringSet(Default::default()),
        ),
        (
            "columns".to_string(),
            ContextValue::StringSet(["main.t.v".to_string()].into()),
        ),
    ]
    .into()
}

#[async_trait]
impl Connector for FakeConnector {
    fn info(&self) -> &ConnectionInfo {
        &self.info
    }
    fn tools(&self) -> Vec<ToolSpec> {
        let schema = json!({"type": "object"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        vec![ToolSpec {
            name: "fake_query".into(),
            description: "fake".into(),
            input_schema: schema.clone(),
            output_schema: schema,
            read_only: false,
        }]
    }
    fn analyse(&self, tool: &str, args: &Value) -> Result<Plan, AnalysisError> {
        if tool != "fake_query" {
            return Err(AnalysisError::UnknownTool(tool.into()));
        }
        let sql = args
            .get("sql")
            .and_then(Value::as_str)
            .ok_or_else(|| AnalysisError::InvalidArguments("sql is required".into()))?;
        let (action, has_where) = match sql {
            "read" => ("sql:select", true),
            "write" => ("sql:delete", true),
            "write-all" => ("sql:delete", false),
            other => {
                return Err(AnalysisError::Unanalysable(format!(
                    "cannot parse {other:?}"
                )));
            }
        };
        Ok(Plan {
            requests: vec![AccessRequest {
                action: action.into(),
                resource: table_resource(&self.info.name, "main", "t"),
                context: ctx(sql, has_where),
            }],
            review: ReviewSummary {
                title: format!(
                    "{action} on main.t{}",
                    self.target.lock().map(|t| t.clone()).unwrap_or_default()
                ),
                runs: vec![ReviewItem {
                    label: action.into(),
                    resources: vec!["main.t".into()],
                    text: ReviewText::code(sql),
                }],
                resources: vec!["main.t".into()],
                diff: None,
            },
            read_only: action == "sql:select",
            prepared: Box::new(()),
        })
    }
    fn intent_order(&self, _plan: &Plan) -> IntentOrder {
        if self.overlap.load(Ordering::SeqCst) {
            IntentOrder::BeforeCommit
        } else {
            IntentOrder::BeforeExecute
        }
    }
    async fn execute(&self, _plan: &Plan, limits: ExecLimits) -> Result<ToolOutput, ExecuteError> {
        self.executed.fetch_add(1, Ordering::SeqCst);
        *self.last_limits.lock().unwrap() = Some(limits.clone());
        let watched = self.watch.lock().unwrap().clone();
        if let Some(store) = watched {
            let n = store.intents().len();
            self.intent_seen
                .lock()
                .unwrap()
                .push(format!("intents at start: {n}"));
        }
        if self.overlap.load(Ordering::SeqCst) {
            let gate = limits.intent.durable().await;
            self.intent_seen.lock().unwrap().push(format!(
                "gate: {}",
                if gate.is_ok() { "ok" } else { "failed" }
            ));
            gate?;
        }
        if self.payload == "HANG" {
            let budget = limits.timeout_within(std::time::Duration::from_secs(60));
            let e = limits
                .stopped(tokio::time::Instant::now(), Some(budget))
                .await;
            self.stopped.store(true, Ordering::SeqCst);
            return Err(e);
        }
        if self.payload == "NESTED" {
            let widget = json!({
                "kind": "Widget",
                "metadata": {"name": "w1", "annotations": {"owner": "team-a", "note": "keep"}},
                "spec": {"pin": "1234", "colour": "blue"}
            });
            return Ok(ToolOutput {
                value: json!({"objects": [widget.clone(), widget]}),
                items: Some(2),
                item_list: Some("/objects".into()),
                truncated: false,
                field_origins: vec![FieldOrigin::new("/objects/*", FieldPath::new(["Widget"]))],
                item_guards: vec![],
                recording: None,
            });
        }
        if self.payload == "DERIVED" {
            // hex(email), ssn, city of main.t
            return Ok(ToolOutput {
                value: json!({"rows": [["626f62406578616d706c652e6f7267", "078-05-1120", "Lyon"]]}),
                items: Some(1),
                item_list: Some("/rows".into()),
                truncated: false,
                field_origins: vec![
                    FieldOrigin::derived_from("/rows/*/0", FieldPath::new(["main", "t", "email"])),
                    FieldOrigin::new("/rows/*/1", FieldPath::new(["main", "t", "ssn"])),
                    FieldOrigin::new("/rows/*/2", FieldPath::new(["main", "t", "city"])),
                ],
                item_guards: vec![],
                recording: None,
            });
        }
        if self.payload == "BARE" {
            return Ok(ToolOutput {
                value: json!(["bob@example.com", "plain"]),
                items: Some(2),
                item_list: None,
                truncated: true,
                field_origins: vec![],
                item_guards: vec![],
                recording: None,
            });
        }
        if self.payload == "GUARDED" {
            let guard = |i: usize, conn: &str, table: &str| ItemGuard {
                pointer: format!("/tables/{i}"),
                request: AccessRequest {
                    action: "sql:select".into(),
                    resource: table_resource(conn, "main", table),
                    context: ctx("read", true),
                },
            };
            return Ok(ToolOutput {
                value: json!({"tables": [{"name": "t"}, {"name": "x"}]}),
                items: Some(2),
                item_list: Some("/tables".into()),
                truncated: false,
                field_origins: vec![],
                item_guards: vec![guard(0, &self.info.name, "t"), guard(1, "secret-db", "x")],
                recording: None,
            });
        }
        if self.payload == "RECORDED" {
            return Ok(recorded_output());
        }
        if self.payload == "PROGRESS" {
            for message in PROGRESS_MESSAGES {
                if let Some(p) = &limits.progress {
                    p.report(*message);
                }
                // A running command: the transport gets each report while
                // the execution is still going.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        if self.payload == "PANIC" {
            panic!("fake connector bug");
        }
        if self.payload == "FAIL" {
            return Err(ExecuteError::Target(
                "constraint violated for key alice@example.com: \"k4111111111111111\"".into(),
            ));
        }
        Ok(ToolOutput {
            value: json!({"columns": [{"name": "v", "type": "text"}], "rows": [[self.payload]], "row_count": 1, "truncated": false}),
            items: Some(1),
            item_list: Some("/rows".into()),
            truncated: false,
            field_origins: vec![],
            item_guards: vec![],
            recording: None,
        })
    }
}

/// Payload `RECORDED`: what an SSH-like family returns for a command, the
/// recording's events on line boundaries.
fn recorded_output() -> ToolOutput {
    let stdout = ["user alice@example.com\n", "card 4111 1111 1111 1111\n"];
    let stderr = "warn: 10.1.2.3 is slow\n";
    let event = |ms: u64, field: &str, text: &str| RecordedOutput {
        at: std::time::Duration::from_millis(ms),
        field: FieldPath::new([field]),
        text: text.into(),
    };
    ToolOutput {
        value: json!({"exit_code": 0, "stdout": stdout.concat(), "stderr": stderr, "truncated": false}),
        items: None,
        item_list: None,
        truncated: false,
        field_origins: vec![
            FieldOrigin::new("/stdout", FieldPath::new(["stdout"])),
            FieldOrigin::new("/stderr", FieldPath::new(["stderr"])),
        ],
        item_guards: vec![],
        recording: Some(Recording {
            width: 80,
            height: 24,
            timestamp: 1_700_000_000,
            command: "grep -e alice@example.com /srv/users".into(),
            title: "ssh db".into(),
            events: vec![
                event(100, "stdout", stdout[0]),
                event(250, "stdout", stdout[1]),
                event(300, "stderr", stderr),
            ],
        }),
    }
}

/// An allowed `sql_query` event record of user `user{n}` running `SELECT {n}`,
/// for tests that need a chain of plain events.
pub fn sample_record(n: u64) -> AuditRecord {
    AuditRecord {
        principal: Principal {
            sub: format!("user{n}"),
            groups: vec![],
        },
        tool: "sql_query".into(),
        connection: Some("shop".into()),
        arguments: json!({"sql": format!("SELECT {n}")}),
        requests: vec![],
        decision: "allow".into(),
        approval: None,
        outcome: OutcomeRecord {
            status: "ok".into(),
            duration_ms: n,
            rows: Some(n),
            error: None,
        },
        result_preview: json!(null),
        masked: Default::default(),
        recording: None,
        intent: None,
    }
}

/// Stack of a tokio worker thread (and of a default test thread): what a
/// call's analysis gets in the server.
pub const WORKER_STACK: usize = 2 * 1024 * 1024;

/// Run `f` on a thread with a [`WORKER_STACK`], as the server would: a
/// stack overflow there is a crash the fuzz tests must find. Panics if `f`
/// panicked.
pub fn on_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(WORKER_STACK)
        .spawn(f)
        .expect("spawn a worker-stack thread")
        .join()
        .expect("panicked on a worker stack")
}

/// Cases per fuzz property: `FUZZ_CASES`, else 256.
pub fn fuzz_cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// The proptest config of a crate's `tests/fuzz.rs`: `$cases` cases, and
/// failures found kept in the calling crate's
/// `proptest-regressions/fuzz.txt` (replayed first on every run; commit it).
/// A macro so that `CARGO_MANIFEST_DIR` is the calling crate's; the caller
/// depends on proptest.
#[macro_export]
macro_rules! fuzz_config {
    ($cases:expr) => {
        proptest::test_runner::Config {
            cases: $cases,
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::Direct(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/proptest-regressions/fuzz.txt"
                )),
            )),
            ..proptest::test_runner::Config::default()
        }
    };
}
