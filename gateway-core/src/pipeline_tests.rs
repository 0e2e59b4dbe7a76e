//! Pipeline tests with fakes: the order of stages, fail-closed paths, and one
//! audit event per call. Real connectors are tested in `tests/`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::approval::CallContext;
use crate::audit::AuditStore;
use crate::policy::{Mode, PolicyEngine, load_sources};
use crate::test_util::{FakeConnector, MemoryStore};
use crate::{Gateway, GatewayBuilder, Principal};

const POLICY: &str = r#"
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"db");
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource in Tollgate::Connection::"db");
@id("auditors")
permit(principal in Tollgate::Group::"auditors", action == Tollgate::Action::"audit:read", resource);
"#;

struct Fixture {
    gw: Gateway,
    store: Arc<MemoryStore>,
    conn: Arc<FakeConnector>,
}

fn fixture(mode: Mode, payload: &str) -> Fixture {
    let store = Arc::new(MemoryStore::default());
    let conn = Arc::new(FakeConnector::new("db", payload));
    let other = Arc::new(FakeConnector::new("secret-db", payload));
    let policy = PolicyEngine::new(
        crate::test_util::policy_schema(),
        &load_sources(vec![("p.cedar".into(), POLICY.into())]),
    )
    .unwrap();
    let gw = GatewayBuilder::new(policy, store.clone())
        .mode(mode)
        .connection(conn.clone())
        .connection(other)
        .build()
        .unwrap();
    Fixture { gw, store, conn }
}

fn agent() -> Principal {
    Principal {
        sub: "bot".into(),
        groups: vec!["agents".into()],
    }
}

async fn call(f: &Fixture, tool: &str, args: Value) -> crate::CallResult {
    f.gw.call(&agent(), tool, args, &CallContext::default())
        .await
}

#[tokio::test]
async fn allowed_read_executes_and_is_recorded() {
    let f = fixture(Mode::Enforce, "hello");
    let r = call(&f, "fake_query", json!({"connection": "db", "sql": "read"})).await;
    assert!(!r.is_error, "{r:?}");
    assert_eq!(r.structured["rows"], json!([["hello"]]));
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 1);
    let events = f.store.calls();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].record.decision, "allow");
    assert_eq!(events[0].record.requests.len(), 2, "connect + select");
    assert_eq!(events[0].record.outcome.rows, Some(1));
}

#[tokio::test]
async fn denied_write_never_executes_and_names_nothing_permitting() {
    let f = fixture(Mode::Enforce, "x");
    let r = call(
        &f,
        "fake_query",
        json!({"connection": "db", "sql": "write"}),
    )
    .await;
    assert!(r.is_error);
    assert_eq!(r.structured["error"]["code"], "denied");
    assert!(
        r.structured["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no policy permits sql:delete"),
        "{r:?}"
    );
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 0);
    assert_eq!(f.store.calls()[0].record.decision, "deny");
}

#[tokio::test]
async fn shadow_mode_lets_denied_call_through_but_records_it() {
    let f = fixture(Mode::Shadow, "x");
    let r = call(
        &f,
        "fake_query",
        json!({"connection": "db", "sql": "write"}),
    )
    .await;
    assert!(!r.is_error, "{r:?}");
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 1);
    let ev = f.store.calls()[0].clone();
    assert!(
        ev.record.requests.iter().any(|q| q.decision == "deny"),
        "{ev:?}"
    );
}

#[tokio::test]
async fn unanalysable_input_is_denied_before_policy() {
    let f = fixture(Mode::Shadow, "x");
    let r = call(
        &f,
        "fake_query",
        json!({"connection": "db", "sql": "garbage"}),
    )
    .await;
    assert!(r.is_error);
    assert_eq!(r.structured["error"]["code"], "denied");
    assert_eq!(
        f.conn.executed.load(Ordering::SeqCst),
        0,
        "shadow mode must not run what it cannot analyse"
    );
}

#[tokio::test]
async fn broken_audit_store_fails_closed() {
    let f = fixture(Mode::Enforce, "x");
    f.store.broken.store(true, Ordering::SeqCst);
    let r = call(&f, "fake_query", json!({"connection": "db", "sql": "read"})).await;
    assert!(r.is_error);
    assert_eq!(r.structured["error"]["code"], "audit_unavailable");
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unknown_connection_and_connection_without_connect_are_refused() {
    let f = fixture(Mode::Enforce, "x");
    let r = call(
        &f,
        "fake_query",
        json!({"connection": "nope", "sql": "read"}),
    )
    .await;
    assert_eq!(r.structured["error"]["code"], "unknown_connection");
    let r = call(
        &f,
        "fake_query",
        json!({"connection": "secret-db", "sql": "read"}),
    )
    .await;
    assert_eq!(r.structured["error"]["code"], "denied");
    let r = call(&f, "fake_query", json!({"sql": "read"})).await;
    assert_eq!(r.structured["error"]["code"], "invalid_arguments");
    assert_eq!(f.store.calls().len(), 3, "every call is recorded");
}

#[tokio::test]
async fn list_connections_shows_only_connectable() {
    let f = fixture(Mode::Enforce, "x");
    let r = call(&f, "list_connections", json!({})).await;
    assert_eq!(
        r.structured,
        json!({"connections": [{"name": "db", "kind": "fake", "description": "test"}]})
    );
}

#[tokio::test]
async fn target_errors_are_masked_in_the_result_and_the_record() {
    let f = fixture(Mode::Enforce, "FAIL");
    let r = call(&f, "fake_query", json!({"connection": "db", "sql": "read"})).await;
    assert_eq!(r.structured["error"]["code"], "target_error");
    let msg = r.structured["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    let recorded = serde_json::to_string(&f.store.calls()[0]).unwrap();
    assert!(!msg.contains("alice@example.com"), "{msg}");
    assert!(msg.contains("[EMAIL]"), "{msg}");
    assert!(!recorded.contains("alice@example.com"), "{recorded}");
    // A card glued to a letter (`'k' || card` in a cast error) is a card.
    assert!(msg.contains("\"k[CREDIT_CARD]\""), "{msg}");
    assert!(!recorded.contains("4111111111111111"), "{recorded}");
}

#[tokio::test]
async fn list_connections_refuses_undeclared_arguments_and_audits_it() {
    let f = fixture(Mode::Enforce, "x");
    let r = call(&f, "list_connections", json!({"connection": "db"})).await;
    assert_eq!(r.structured["error"]["code"], "invalid_arguments", "{r:?}");
    let r = call(&f, "list_connections", json!({})).await;
    assert!(!r.is_error, "{r:?}");
    let events = f.store.calls();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].record.decision, "error");
    assert_eq!(events[1].record.decision, "allow");
}

#[tokio::test]
async fn a_panicking_stage_is_an_audited_internal_error() {
    let f = fixture(Mode::Enforce, "PANIC");
    let r = call(&f, "fake_query", json!({"connection": "db", "sql": "read"})).await;
    assert!(r.is_error, "{r:?}");
    assert_eq!(r.structured["error"]["code"], "internal_error", "{r:?}");
    let events = f.store.calls();
    assert_eq!(events.len(), 1, "one audit event");
    assert_eq!(events[0].record.decision, "error");
    assert_eq!(events[0].record.tool, "fake_query");
}

#[tokio::test]
async fn chain_of_recorded_calls_verifies() {
    let f = fixture(Mode::Enforce, "x");
    for sql in ["read", "write", "garbage", "read"] {
        call(&f, "fake_query", json!({"connection": "db", "sql": sql})).await;
    }
    let report = f.store.verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(f.store.calls().len(), 4);
    // Every entry checked, intents included, and none left open.
    assert_eq!(
        report.checked as usize,
        f.store.events.lock().unwrap().len()
    );
    assert_eq!(report.open_intents, 0, "{report}");
}

#[tokio::test]
async fn audit_read_is_policy_controlled() {
    let f = fixture(Mode::Enforce, "x");
    assert!(!f.gw.may_read_audit(&agent()));
    assert!(f.gw.may_read_audit(&Principal {
        sub: "ann".into(),
        groups: vec!["auditors".into()]
    }));
}

#[tokio::test]
async fn results_are_masked_for_the_caller_and_the_record_with_counts() {
    let f = fixture(
        Mode::Enforce,
        "mail bob@example.org, card 4111 1111 1111 1111",
    );
    let r = call(&f, "fake_query", json!({"connection": "db", "sql": "read"})).await;
    let shown = r.structured["rows"][0][0].as_str().unwrap().to_string();
    assert!(
        !shown.contains("bob@example.org") && !shown.contains("4111 1111 1111 1111"),
        "{shown}"
    );
    assert_eq!(
        r.structured["masked"],
        json!({"CREDIT_CARD": 1, "EMAIL": 1})
    );
    let ev = f.store.calls()[0].clone();
    assert_eq!(ev.record.masked.get("EMAIL"), Some(&1));
    assert!(
        !serde_json::to_string(&ev)
            .unwrap()
            .contains("bob@example.org")
    );
}

#[tokio::test]
async fn unmask_policy_shows_raw_values_but_the_record_stays_masked() {
    let store = Arc::new(MemoryStore::default());
    let conn = Arc::new(FakeConnector::new("db", "mail bob@example.org"));
    let text = format!(
        "{POLICY}\npermit(principal in Tollgate::Group::\"agents\", action == Tollgate::Action::\"unmask\", resource) when {{ context.types == [\"EMAIL\"] }};"
    );
    let policy = PolicyEngine::new(
        crate::test_util::policy_schema(),
        &load_sources(vec![("p.cedar".into(), text)]),
    )
    .unwrap();
    let gw = GatewayBuilder::new(policy, store.clone())
        .connection(conn)
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
    assert_eq!(r.structured["rows"][0][0], "mail bob@example.org", "{r:?}");
    let recorded = serde_json::to_string(&store.calls()[0]).unwrap();
    assert!(!recorded.contains("bob@example.org"), "{recorded}");
}

#[tokio::test]
async fn arguments_are_masked_in_the_record() {
    let f = fixture(Mode::Enforce, "x");
    call(
        &f,
        "fake_query",
        json!({"connection": "db", "sql": "read", "note": "for carol@example.com"}),
    )
    .await;
    let recorded = serde_json::to_string(&f.store.calls()[0]).unwrap();
    assert!(!recorded.contains("carol@example.com"), "{recorded}");
}

#[tokio::test]
async fn guarded_items_the_caller_may_not_see_are_removed_before_audit() {
    let f = fixture(Mode::Enforce, "GUARDED");
    let r = call(&f, "fake_query", json!({"connection": "db", "sql": "read"})).await;
    assert!(!r.is_error, "{r:?}");
    assert_eq!(r.structured["tables"], json!([{"name": "t"}]));
    assert!(
        r.structured.get("hidden").is_none(),
        "the caller gets no count"
    );
    let events = f.store.calls();
    let recorded = &events[0].record.result_preview;
    assert_eq!(recorded["tables"], json!([{"name": "t"}]), "{recorded}");
    assert_eq!(recorded["hidden"], 1, "the audit record counts them");
    assert_eq!(events[0].record.outcome.rows, Some(1));
    // Shadow mode records, it does not hide.
    let f = fixture(Mode::Shadow, "GUARDED");
    let r = call(&f, "fake_query", json!({"connection": "db", "sql": "read"})).await;
    assert_eq!(
        r.structured["tables"],
        json!([{"name": "t"}, {"name": "x"}])
    );
}

#[tokio::test]
async fn the_strictest_max_affected_rows_of_the_allowing_permits_reaches_the_connector() {
    let store = Arc::new(MemoryStore::default());
    let conn = Arc::new(FakeConnector::new("db", "x"));
    let text = format!(
        "{POLICY}\n@id(\"bulk\")\n@max_affected_rows(\"50\")\npermit(principal in Tollgate::Group::\"agents\", action == Tollgate::Action::\"sql:delete\", resource in Tollgate::Connection::\"db\");\n@id(\"capped-connect\")\n@max_affected_rows(\"7\")\npermit(principal in Tollgate::Group::\"agents\", action == Tollgate::Action::\"connect\", resource == Tollgate::Connection::\"db\");\n"
    );
    let policy = PolicyEngine::new(
        crate::test_util::policy_schema(),
        &load_sources(vec![("p.cedar".into(), text)]),
    )
    .unwrap();
    let gw = GatewayBuilder::new(policy, store)
        .connection(conn.clone())
        .build()
        .unwrap();
    let r = gw
        .call(
            &agent(),
            "fake_query",
            json!({"connection": "db", "sql": "write"}),
            &CallContext::default(),
        )
        .await;
    assert!(!r.is_error, "{r:?}");
    let limits = conn.last_limits.lock().unwrap().clone().unwrap();
    let cap = limits.max_affected.unwrap();
    assert_eq!(
        (cap.max, cap.set_by.as_str()),
        (7, "policy `capped-connect`")
    );
}

#[tokio::test]
async fn a_family_field_rule_masks_nested_output_that_is_not_rows() {
    let store = Arc::new(MemoryStore::default());
    let conn = Arc::new(FakeConnector::new("db", "NESTED"));
    let policy = PolicyEngine::new(
        crate::test_util::policy_schema(),
        &load_sources(vec![("p.cedar".into(), POLICY.into())]),
    )
    .unwrap();
    let config: crate::mask::MaskConfig = serde_json::from_value(json!({"fields": [
        {"field": "Widget.spec.pin", "kinds": ["fake"], "type": "PIN"},
        {"field": "*.metadata.annotations.*", "connections": ["d*"], "type": "NOTE"},
        {"field": "Widget.spec.colour", "kinds": ["postgres"], "type": "NEVER"}
    ]}))
    .unwrap();
    let gw = GatewayBuilder::new(policy, store.clone())
        .connection(conn)
        .masker(Arc::new(crate::mask::Masker::new(&config).unwrap()))
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
    assert!(!r.is_error, "{r:?}");
    for object in r.structured["objects"].as_array().unwrap() {
        assert_eq!(object["spec"], json!({"pin": "[PIN]", "colour": "blue"}));
        assert_eq!(
            object["metadata"],
            json!({"name": "w1", "annotations": {"owner": "[NOTE]", "note": "[NOTE]"}})
        );
    }
    assert_eq!(r.structured["masked"], json!({"NOTE": 4, "PIN": 2}));
    let events = store.calls();
    let record = &events[0].record;
    assert_eq!(record.outcome.rows, Some(2), "items are counted as `rows`");
    assert_eq!(record.result_preview["objects"][1]["spec"]["pin"], "[PIN]");
    assert_eq!(record.masked.get("PIN"), Some(&2));
}

#[tokio::test]
async fn a_result_that_is_not_an_object_keeps_its_counts_and_cut() {
    let f = fixture(Mode::Enforce, "BARE");
    let r = call(&f, "fake_query", json!({"connection": "db", "sql": "read"})).await;
    assert!(!r.is_error, "{r:?}");
    assert_eq!(
        r.structured,
        json!({"value": ["[EMAIL]", "plain"], "masked": {"EMAIL": 1}, "truncated": true})
    );
}

#[test]
fn the_audit_preview_keeps_the_first_items_of_the_list_the_connector_names() {
    let long: Vec<u64> = (0..30).collect();
    let value = json!({"rows": long, "other": long, "nested": {"rows": long}});
    let cut = crate::record::preview(&value, Some("/rows"));
    assert_eq!(cut["rows"].as_array().unwrap().len(), 5);
    assert_eq!(cut["other"].as_array().unwrap().len(), 20);
    assert_eq!(cut["nested"]["rows"].as_array().unwrap().len(), 20);
    let cut = crate::record::preview(&value, Some("/nested/rows"));
    assert_eq!(cut["rows"].as_array().unwrap().len(), 20);
    assert_eq!(cut["nested"]["rows"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn a_cancelled_call_stops_the_connector_and_is_audited() {
    let f = fixture(Mode::Enforce, "HANG");
    let token = tokio_util::sync::CancellationToken::new();
    let ctx = CallContext {
        cancellation: Some(&token),
        ..Default::default()
    };
    let cancel_soon = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        token.cancel();
    };
    let started = std::time::Instant::now();
    let bot = agent();
    let (r, ()) = tokio::join!(
        f.gw.call(
            &bot,
            "fake_query",
            json!({"connection": "db", "sql": "read"}),
            &ctx
        ),
        cancel_soon
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(r.is_error, "{r:?}");
    assert_eq!(r.structured["error"]["code"], "cancelled");
    assert!(f.conn.stopped.load(Ordering::SeqCst));
    let events = f.store.calls();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].record.decision, "error");
    assert!(
        events[0]
            .record
            .outcome
            .error
            .as_deref()
            .unwrap()
            .contains("cancelled"),
        "{:?}",
        events[0].record.outcome
    );
    // A call whose caller already went away never runs.
    let r =
        f.gw.call(
            &agent(),
            "fake_query",
            json!({"connection": "db", "sql": "read"}),
            &ctx,
        )
        .await;
    assert_eq!(r.structured["error"]["code"], "cancelled");
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unmask_is_asked_per_masked_field_and_results_name_the_rules() {
    let run = |extra: &str| {
        let masker = crate::mask::Masker::new(
            &serde_json::from_value(json!({
                "columns": [{"connection": "db", "column": "main.t.email", "type": "EMAIL", "strategy": "partial"}]
            }))
            .unwrap(),
        )
        .unwrap();
        let store = Arc::new(MemoryStore::default());
        let policy = PolicyEngine::new(
            crate::test_util::policy_schema(),
            &load_sources(vec![("p.cedar".into(), format!("{POLICY}\n{extra}"))]),
        )
        .unwrap();
        let gw = GatewayBuilder::new(policy, store.clone())
            .masker(Arc::new(masker))
            .connection(Arc::new(FakeConnector::new("db", "DERIVED")))
            .build()
            .unwrap();
        (gw, store)
    };
    let unmask_all = r#"permit(principal, action == Tollgate::Action::"unmask", resource);"#;
    let keep_ssn = r#"forbid(principal, action == Tollgate::Action::"unmask", resource)
        when { context has fields && context.fields.contains("main.t.ssn") };"#;
    let both = format!("{unmask_all}\n{keep_ssn}");
    for (policy, raw) in [("", false), (unmask_all, true), (both.as_str(), false)] {
        let (gw, store) = run(policy);
        let r = gw
            .call(
                &agent(),
                "fake_query",
                json!({"connection": "db", "sql": "read"}),
                &CallContext::default(),
            )
            .await;
        let row = &r.structured["rows"][0];
        if raw {
            assert_eq!(row[1], "078-05-1120", "{policy}: {r:?}");
            assert!(r.structured.get("masked_fields").is_none(), "{r:?}");
        } else {
            // hex(email) is derived: partial becomes redact; ssn by its name.
            assert_eq!(
                row,
                &json!(["[EMAIL]", "[US_SSN]", "Lyon"]),
                "{policy}: {r:?}"
            );
            let fields = &r.structured["masked_fields"];
            assert_eq!(fields[0]["field"], "main.t.email", "{fields}");
            assert_eq!(fields[0]["by"], "rule");
            assert_eq!(fields[0]["strategy"], "redact");
            assert_eq!(fields[1]["by"], "name");
        }
        let recorded = serde_json::to_string(&store.calls()[0]).unwrap();
        assert!(!recorded.contains("078-05-1120"), "{recorded}");
    }
}

mod metrics;
mod recording;
mod write_ahead;
