//! What the pipeline counts, with a recorder local to the test's thread:
//! every call is counted once, under the decision its audit event holds, by
//! a bounded `tool` label; every append is timed.

use std::collections::BTreeMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use super::*;
use crate::metrics::{AUDIT_APPEND_DURATION, CALL_DURATION, CALLS_TOTAL};

/// (name, labels) → value, from the recorder's snapshot.
type Seen = BTreeMap<(String, Vec<(String, String)>), DebugValue>;

fn seen(recorder: &DebuggingRecorder) -> Seen {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            ((key.name().to_string(), labels), value)
        })
        .collect()
}

fn calls(seen: &Seen, tool: &str, decision: &str) -> u64 {
    let key = (
        CALLS_TOTAL.to_string(),
        vec![
            ("tool".to_string(), tool.to_string()),
            ("decision".to_string(), decision.to_string()),
        ],
    );
    match seen.get(&key) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        Some(other) => panic!("{CALLS_TOTAL} is not a counter: {other:?}"),
    }
}

fn samples(seen: &Seen, name: &str, labels: &[(&str, &str)]) -> usize {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match seen.get(&(name.to_string(), labels)) {
        Some(DebugValue::Histogram(v)) => v.len(),
        None => 0,
        Some(other) => panic!("{name} is not a histogram: {other:?}"),
    }
}

// The default (current-thread) runtime keeps the whole test on the thread
// whose local recorder is set.
#[tokio::test]
async fn every_call_is_counted_once_under_its_recorded_decision() {
    let recorder = DebuggingRecorder::new();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let f = fixture(Mode::Enforce, "hello");
    let read = json!({"connection": "db", "sql": "read"});
    call(&f, "fake_query", read.clone()).await;
    call(&f, "fake_query", read).await;
    // Denied by policy, and unanalysable.
    call(
        &f,
        "fake_query",
        json!({"connection": "db", "sql": "write"}),
    )
    .await;
    call(
        &f,
        "fake_query",
        json!({"connection": "db", "sql": "garbage"}),
    )
    .await;
    // Built-ins: served, and refused for its arguments.
    call(&f, "list_connections", json!({})).await;
    call(&f, "list_connections", json!({"x": 1})).await;
    // Tools this gateway does not serve, one named after a secret.
    call(&f, "no_such_tool", json!({})).await;
    call(&f, "drop_everything_hunter2", json!({})).await;

    let events = f.store.calls();
    assert_eq!(events.len(), 8, "one event per call");
    let seen = seen(&recorder);
    assert_eq!(calls(&seen, "fake_query", "allow"), 2, "{seen:?}");
    assert_eq!(calls(&seen, "fake_query", "deny"), 2, "{seen:?}");
    assert_eq!(calls(&seen, "list_connections", "allow"), 1, "{seen:?}");
    assert_eq!(calls(&seen, "list_connections", "error"), 1, "{seen:?}");
    let unknown: u64 = ["allow", "deny", "pending", "error"]
        .iter()
        .map(|d| calls(&seen, "unknown", d))
        .sum();
    assert_eq!(unknown, 2, "{seen:?}");
    // The counts are the recorded decisions, event for event.
    let total: u64 = seen
        .iter()
        .filter(|((name, _), _)| name == CALLS_TOTAL)
        .map(|(_, v)| match v {
            DebugValue::Counter(n) => *n,
            _ => 0,
        })
        .sum();
    assert_eq!(total, events.len() as u64);
    for e in &events {
        let tool = if ["fake_query", "list_connections"].contains(&e.record.tool.as_str()) {
            e.record.tool.as_str()
        } else {
            "unknown"
        };
        assert!(calls(&seen, tool, &e.record.decision) > 0, "{e:?}");
    }
    assert_eq!(samples(&seen, CALL_DURATION, &[("tool", "fake_query")]), 4);
    assert_eq!(samples(&seen, CALL_DURATION, &[("tool", "unknown")]), 2);
    // Every append is timed: the events and the write-ahead intents.
    let appended = f.store.events.lock().unwrap().len();
    assert!(appended > events.len(), "executed calls have intents");
    assert_eq!(samples(&seen, AUDIT_APPEND_DURATION, &[]), appended);
    // Labels never hold what a caller sent beyond a served tool's name.
    let text = format!("{seen:?}");
    for leaked in ["no_such_tool", "hunter2", "bot", "garbage", "\"db\""] {
        assert!(!text.contains(leaked), "{leaked} in {text}");
    }
}

#[tokio::test]
async fn a_panicking_stage_is_counted_as_an_error() {
    let recorder = DebuggingRecorder::new();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let f = fixture(Mode::Enforce, "PANIC");
    let r = call(&f, "fake_query", json!({"connection": "db", "sql": "read"})).await;
    assert!(r.is_error);
    let seen = seen(&recorder);
    assert_eq!(calls(&seen, "fake_query", "error"), 1, "{seen:?}");
    assert_eq!(calls(&seen, "fake_query", "allow"), 0, "{seen:?}");
}
