//! Write-ahead audit (`audit::intent`): an executed call's intent is durable
//! before it can take effect, its event names it, a failed intent stops the
//! call, and intents a crash left open are closed as `unknown`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use super::{Fixture, call, fixture};
use crate::audit::AuditStore;
use crate::audit::intent::{INTENT_STATUS, UNKNOWN_STATUS, close_unfinished};
use crate::policy::Mode;

fn read_args() -> serde_json::Value {
    json!({"connection": "db", "sql": "read"})
}

fn watch(f: &Fixture) {
    *f.conn.watch.lock().unwrap() = Some(f.store.clone());
}

#[tokio::test]
async fn an_executed_call_leaves_its_intent_first_and_its_event_names_it() {
    let f = fixture(Mode::Enforce, "hello");
    watch(&f);
    let r = call(&f, "fake_query", read_args()).await;
    assert!(!r.is_error, "{r:?}");
    // The intent was in the store before the connector started.
    assert_eq!(
        *f.conn.intent_seen.lock().unwrap(),
        vec!["intents at start: 1".to_string()]
    );
    let all = f.store.events.lock().unwrap().clone();
    assert_eq!(all.len(), 2, "{all:#?}");
    let (intent, event) = (&all[0], &all[1]);
    assert_eq!(intent.record.outcome.status, INTENT_STATUS);
    assert_eq!(intent.record.decision, "allow");
    assert_eq!(intent.record.arguments, event.record.arguments);
    assert_eq!(intent.record.requests, event.record.requests);
    assert_eq!(intent.record.result_preview, serde_json::Value::Null);
    assert_eq!(event.record.intent.as_deref(), Some(intent.id.as_str()));
    assert_eq!(event.record.outcome.status, "ok");
    // Listings show the one event per call; verify sees both, none open.
    let listed = f.store.list(&Default::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, event.id);
    let report = f.store.verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!((report.open_intents, report.outcomes_unknown), (0, 0));
}

#[tokio::test]
async fn calls_that_never_execute_leave_no_intent() {
    let f = fixture(Mode::Enforce, "hello");
    for sql in ["write", "garbage"] {
        let r = call(&f, "fake_query", json!({"connection": "db", "sql": sql})).await;
        assert!(r.is_error, "{r:?}");
    }
    call(
        &f,
        "fake_query",
        json!({"connection": "nope", "sql": "read"}),
    )
    .await;
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 0);
    assert!(f.store.intents().is_empty());
    assert!(f.store.calls().iter().all(|e| e.record.intent.is_none()));
}

#[tokio::test]
async fn an_intent_that_cannot_be_recorded_stops_the_call_before_it_runs() {
    let f = fixture(Mode::Enforce, "hello");
    f.store.intents_fail.store(true, Ordering::SeqCst);
    let r = call(&f, "fake_query", read_args()).await;
    assert!(r.is_error);
    assert_eq!(r.structured["error"]["code"], "audit_unavailable", "{r:?}");
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 0, "nothing ran");
    // The refusal itself is recorded (the store takes other events).
    let calls = f.store.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].record.decision, "deny");
    assert!(calls[0].record.intent.is_none());
}

#[tokio::test]
async fn an_overlapping_connector_starts_before_the_intent_is_durable_and_commits_after() {
    let f = fixture(Mode::Enforce, "hello");
    watch(&f);
    f.conn.overlap.store(true, Ordering::SeqCst);
    *f.store.append_delay.lock().unwrap() = Some(Duration::from_millis(50));
    let r = call(&f, "fake_query", read_args()).await;
    assert!(!r.is_error, "{r:?}");
    assert_eq!(
        *f.conn.intent_seen.lock().unwrap(),
        vec!["intents at start: 0".to_string(), "gate: ok".to_string()],
        "the work started while the intent was being written, and waited for it"
    );
    let calls = f.store.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].record.intent.is_some());
}

#[tokio::test]
async fn an_overlapping_call_whose_intent_fails_is_undone_and_returns_nothing() {
    let f = fixture(Mode::Enforce, "hello");
    f.conn.overlap.store(true, Ordering::SeqCst);
    f.store.intents_fail.store(true, Ordering::SeqCst);
    let r = call(&f, "fake_query", read_args()).await;
    assert!(r.is_error);
    assert_eq!(r.structured["error"]["code"], "audit_unavailable", "{r:?}");
    assert!(!r.structured.to_string().contains("hello"), "{r:?}");
    assert_eq!(
        *f.conn.intent_seen.lock().unwrap(),
        vec!["gate: failed".to_string()]
    );
}

#[tokio::test]
async fn intents_a_crash_left_open_are_closed_as_unknown_once() {
    let f = fixture(Mode::Enforce, "hello");
    assert!(!call(&f, "fake_query", read_args()).await.is_error);
    // A crash between intent and outcome: the intent alone is in the chain.
    let gw_intent = {
        let trace = crate::record::Trace::start(
            &super::agent(),
            "fake_query",
            &read_args(),
            &crate::mask::Masker::new(&Default::default()).unwrap(),
        );
        trace.intent()
    };
    let open = f.store.append(gw_intent).await.unwrap();
    let report = f.store.verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.open_intents, 1, "{report}");

    assert_eq!(close_unfinished(f.store.as_ref()).await.unwrap(), 1);
    let closing = f.store.calls().pop().unwrap();
    assert_eq!(closing.record.intent.as_deref(), Some(open.id.as_str()));
    assert_eq!(closing.record.outcome.status, UNKNOWN_STATUS);
    assert!(
        closing
            .record
            .outcome
            .error
            .as_deref()
            .unwrap()
            .contains("whether it took effect is unknown"),
        "{closing:?}"
    );
    let report = f.store.verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!((report.open_intents, report.outcomes_unknown), (0, 1));
    assert!(
        report
            .to_string()
            .contains("1 call(s) with outcome unknown")
    );
    // A second start finds nothing left to close.
    assert_eq!(close_unfinished(f.store.as_ref()).await.unwrap(), 0);
    let _: &Arc<_> = &f.store;
}

#[tokio::test]
async fn an_event_that_could_not_be_written_is_written_by_the_next_append() {
    let f = fixture(Mode::Enforce, "hello");
    f.store.events_fail.store(true, Ordering::SeqCst);
    let r = call(&f, "fake_query", read_args()).await;
    assert!(r.is_error, "{r:?}");
    assert!(!r.structured.to_string().contains("hello"), "{r:?}");
    let report = f.store.verify().await.unwrap();
    assert_eq!(report.open_intents, 1, "{report}");
    // The store takes events again: the next call's event is followed by
    // the late one, and no intent is left open while the server runs.
    f.store.events_fail.store(false, Ordering::SeqCst);
    let r = call(&f, "fake_query", read_args()).await;
    assert!(!r.is_error, "{r:?}");
    let intents = f.store.intents();
    let calls = f.store.calls();
    assert_eq!((intents.len(), calls.len()), (2, 2), "{calls:#?}");
    let late = &calls[1];
    assert_eq!(late.record.intent.as_deref(), Some(intents[0].id.as_str()));
    assert_eq!(late.record.outcome.status, "error");
    let said = late.record.outcome.error.as_deref().unwrap_or_default();
    assert!(
        said.contains("recorded late") && said.contains("`ok`"),
        "{said}"
    );
    assert_eq!(late.record.result_preview, serde_json::Value::Null);
    assert!(
        !serde_json::to_string(&late.record)
            .unwrap()
            .contains("hello")
    );
    let report = f.store.verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(
        (report.open_intents, report.outcomes_unknown),
        (0, 0),
        "{report}"
    );
}
