//! Terminal recordings and execution progress through the pipeline, with
//! fakes: the recording is masked like the record, stored before the event
//! that names it, hashed into the event, checked by `verify`; a store that
//! cannot keep it fails the call closed; progress reaches the transport.

use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::approval::ProgressSink;
use crate::audit::{
    AuditEvent, AuditFilter, AuditRecord, BreakKind, EventStream, StoreError, VerifyReport,
    canonical_json, sha256_hex,
};
use crate::test_util::{PROGRESS_MESSAGES, RECORDED_RAW};

async fn read(f: &Fixture) -> crate::CallResult {
    call(f, "fake_query", json!({"connection": "db", "sql": "read"})).await
}

/// The stored file as asciicast v2 lines: a header object, then
/// `[seconds, "o", text]` events.
fn asciicast(body: &[u8]) -> (Value, Vec<(f64, String)>) {
    let text = std::str::from_utf8(body).expect("asciicast is UTF-8");
    assert!(text.ends_with('\n'), "newline-terminated: {text:?}");
    let mut lines = text.lines().map(|l| {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
    });
    let header = lines.next().expect("a header line");
    let events = lines
        .map(|e| {
            let e = e.as_array().expect("an event is an array").clone();
            assert_eq!(e.len(), 3, "{e:?}");
            assert_eq!(e[1], "o", "output events only: {e:?}");
            (
                e[0].as_f64().expect("seconds"),
                e[2].as_str().expect("text").to_string(),
            )
        })
        .collect();
    (header, events)
}

#[tokio::test]
async fn a_recording_is_masked_stored_and_named_by_its_event() {
    let f = fixture(Mode::Enforce, "RECORDED");
    let r = read(&f).await;
    assert!(!r.is_error, "{r:?}");
    let shown = r.structured.to_string();
    let events = f.store.calls();
    assert_eq!(events.len(), 1);
    let reference = events[0]
        .record
        .recording
        .clone()
        .expect("the event names its recording");
    let recordings = f.store.recordings.lock().unwrap().clone();
    assert_eq!(recordings.len(), 1);
    let body = recordings
        .get(&reference.sha256)
        .expect("stored under the sha256 the event names");
    assert_eq!(sha256_hex(body), reference.sha256);
    assert_eq!(body.len() as u64, reference.bytes);

    // Masked: no raw value in the file, the caller's result or the event.
    let file = String::from_utf8(body.clone()).unwrap();
    let event = serde_json::to_string(&events[0]).unwrap();
    for raw in RECORDED_RAW {
        for (what, text) in [("recording", &file), ("result", &shown), ("event", &event)] {
            assert!(!text.contains(raw), "{raw} in the {what}: {text}");
        }
    }

    // Valid asciicast v2, the events as the caller saw the output.
    let (header, out) = asciicast(body);
    assert_eq!(header["version"], 2);
    assert_eq!(
        (header["width"].as_u64(), header["height"].as_u64()),
        (Some(80), Some(24))
    );
    assert_eq!(header["timestamp"], 1_700_000_000);
    assert_eq!(header["title"], "ssh db");
    assert_eq!(header["command"], "grep -e [EMAIL] /srv/users", "{header}");
    let texts: Vec<&str> = out.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        [
            "user [EMAIL]\r\n",
            "card [CREDIT_CARD]\r\n",
            "warn: [IP_ADDRESS] is slow\r\n"
        ]
    );
    let times: Vec<f64> = out.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [0.1, 0.25, 0.3]);
    assert_eq!(
        texts.concat().replace("\r\n", "\n"),
        format!(
            "{}{}",
            r.structured["stdout"].as_str().unwrap(),
            r.structured["stderr"].as_str().unwrap()
        ),
        "the recording shows what the caller got"
    );

    let report = f.store.verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
}

#[tokio::test]
async fn the_recording_reference_is_part_of_the_hashed_event() {
    let f = fixture(Mode::Enforce, "RECORDED");
    assert!(!read(&f).await.is_error);
    let event = f.store.calls()[0].clone();
    // The canonical form written from the struct is the documented generic
    // form (the event serialised, `hash` removed, keys sorted), recording
    // included.
    let mut generic = serde_json::to_value(&event).unwrap();
    generic.as_object_mut().unwrap().shift_remove("hash");
    assert!(generic.get("recording").is_some(), "{generic}");
    assert_eq!(event.canonical(), canonical_json(&generic));

    // Pointing the event at another file (one whose sha256 a forger
    // chose) breaks its hash, not just the recording check.
    let forged = b"{\"version\":2,\"width\":80,\"height\":24}\n".to_vec();
    let mut events = f.store.events.lock().unwrap().clone();
    let at = events.iter().position(|e| e.id == event.id).unwrap();
    events[at].record.recording = Some(crate::recording::RecordingRef {
        sha256: sha256_hex(&forged),
        bytes: forged.len() as u64,
    });
    let b = crate::audit::verify(&events).first_break.expect("a break");
    assert!(matches!(b.kind, BreakKind::HashMismatch { .. }), "{b}");
}

#[tokio::test]
async fn a_changed_or_missing_recording_fails_verify() {
    let f = fixture(Mode::Enforce, "RECORDED");
    assert!(!read(&f).await.is_error);
    assert!(
        !call(&f, "fake_query", json!({"connection": "db", "sql": "read"}))
            .await
            .is_error
    );
    let first = f.store.calls()[0].clone();
    let sha = first.record.recording.clone().unwrap().sha256;
    // Same content, same file: the second call stored nothing new.
    assert_eq!(f.store.recordings.lock().unwrap().len(), 1);

    let original = f.store.recordings.lock().unwrap()[&sha].clone();
    let edited = String::from_utf8(original.clone())
        .unwrap()
        .replace("[EMAIL]", "[EMAIL] ")
        .into_bytes();
    f.store
        .recordings
        .lock()
        .unwrap()
        .insert(sha.clone(), edited);
    let report = f.store.verify().await.unwrap();
    let b = report
        .first_break
        .clone()
        .expect("an edited recording is a break");
    assert_eq!(b.seq, first.seq);
    assert!(
        matches!(&b.kind, BreakKind::RecordingMismatch { sha256, .. } if *sha256 == sha),
        "{b}"
    );
    let text = report.to_string();
    assert!(
        text.contains(&format!("recording {sha} was modified")),
        "{text}"
    );

    f.store.recordings.lock().unwrap().remove(&sha);
    let report = f.store.verify().await.unwrap();
    let text = report.to_string();
    assert!(text.contains("is missing from the store"), "{text}");
    assert_eq!(
        report.checked, first.seq,
        "the first event with it is the break (after its intent)"
    );

    f.store.recordings.lock().unwrap().insert(sha, original);
    assert!(f.store.verify().await.unwrap().is_intact());
}

/// A store that keeps no recordings: `put_recording` and `recording` are
/// the trait's defaults; everything else is the memory store.
struct NoRecordings(Arc<MemoryStore>);

#[async_trait]
impl AuditStore for NoRecordings {
    async fn append(&self, record: AuditRecord) -> Result<AuditEvent, StoreError> {
        self.0.append(record).await
    }
    async fn get(&self, id: &str) -> Result<Option<AuditEvent>, StoreError> {
        self.0.get(id).await
    }
    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        self.0.list(filter).await
    }
    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.0.verify().await
    }
    fn healthy(&self) -> Result<(), StoreError> {
        self.0.healthy()
    }
    fn export(&self) -> EventStream {
        self.0.export()
    }
}

#[tokio::test]
async fn a_store_that_cannot_keep_the_recording_fails_the_call_and_no_event_claims_one() {
    let memory = Arc::new(MemoryStore::default());
    let conn = Arc::new(FakeConnector::new("db", "RECORDED"));
    let policy = PolicyEngine::new(
        crate::test_util::policy_schema(),
        &load_sources(vec![("p.cedar".into(), POLICY.into())]),
    )
    .unwrap();
    let gw = GatewayBuilder::new(policy, Arc::new(NoRecordings(memory.clone())))
        .connection(conn.clone())
        .build()
        .unwrap();
    let r = gw
        .call(
            &agent(),
            "fake_query",
            json!({"connection": "db", "sql": "read"}),
            &CallContext::default(),
        )
        .await;
    assert_eq!(conn.executed.load(Ordering::SeqCst), 1);
    assert!(r.is_error, "the output is withheld: {r:?}");
    assert_eq!(r.structured["error"]["code"], "audit_unavailable", "{r:?}");
    let message = r.structured["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("recording could not be stored"),
        "{message}"
    );
    let shown = r.structured.to_string();
    for raw in RECORDED_RAW {
        assert!(!shown.contains(raw), "{raw} in {shown}");
    }
    let events = memory.calls();
    assert!(
        events.iter().all(|e| e.record.recording.is_none()),
        "an event names a recording that was never stored: {events:?}"
    );
    // Yet the call that ran is recorded, as an error saying it ran.
    let ran = events
        .iter()
        .find(|e| e.record.tool == "fake_query")
        .expect("the executed call has an event");
    assert_eq!(ran.record.outcome.status, "error");
    let why = ran.record.outcome.error.as_deref().unwrap_or_default();
    assert!(why.contains("the call ran"), "{why}");
    assert!(memory.verify().await.unwrap().is_intact());
}

/// A transport's progress sink that keeps every message.
#[derive(Default)]
struct Collect(Mutex<Vec<String>>);

impl ProgressSink for Collect {
    fn progress(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

#[tokio::test]
async fn progress_reported_while_the_connector_runs_reaches_the_transport() {
    let f = fixture(Mode::Enforce, "PROGRESS");
    let sink = Collect::default();
    let r =
        f.gw.call(
            &agent(),
            "fake_query",
            json!({"connection": "db", "sql": "read"}),
            &CallContext {
                progress: Some(&sink),
                ..Default::default()
            },
        )
        .await;
    assert!(!r.is_error, "{r:?}");
    assert_eq!(*sink.0.lock().unwrap(), PROGRESS_MESSAGES);
    let limits = f.conn.last_limits.lock().unwrap().clone().unwrap();
    assert!(limits.progress.is_some(), "the connector got a sender");
}

#[tokio::test]
async fn a_call_without_a_progress_sink_runs_without_a_sender() {
    let f = fixture(Mode::Enforce, "PROGRESS");
    let r = read(&f).await;
    assert!(!r.is_error, "{r:?}");
    assert_eq!(r.structured["rows"], json!([["PROGRESS"]]));
    let limits = f.conn.last_limits.lock().unwrap().clone().unwrap();
    assert!(limits.progress.is_none(), "nobody listens: no sender");
    assert_eq!(f.store.calls().len(), 1);
}
