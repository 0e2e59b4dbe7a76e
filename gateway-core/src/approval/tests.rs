//! Approval rules and the gate with in-memory stores and a fake connector:
//! distinct approvers, self-approval, binding, re-evaluation, exactly-once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use super::record::{Review, merge_requirements, satisfied};
use super::store::MemoryApprovalStore;
use super::*;
use crate::policy::{ApprovalRequirement, PolicyEngine, load_sources};
use crate::test_util::{FakeConnector, MemoryStore};
use crate::{Gateway, GatewayBuilder, Principal};

fn p(sub: &str, groups: &[&str]) -> Principal {
    Principal {
        sub: sub.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn review(sub: &str, groups: &[&str]) -> Review {
    Review {
        sub: sub.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        verdict: "approve".into(),
        reason: None,
        time: Utc::now(),
    }
}

fn req(group: &str, count: u32) -> Requirement {
    Requirement {
        group: group.into(),
        count,
        policies: vec!["p".into()],
    }
}

#[test]
fn one_person_in_two_groups_fills_one_slot() {
    let required = vec![req("dba", 1), req("reviewers", 1)];
    let alice = review("alice", &["dba", "reviewers"]);
    assert!(!satisfied(&required, std::slice::from_ref(&alice), "bot"));
    assert!(satisfied(
        &required,
        &[alice.clone(), review("bob", &["reviewers"])],
        "bot"
    ));
    // Bob only in dba, Alice in both: matching must move Alice to reviewers.
    assert!(satisfied(
        &required,
        &[alice, review("bob", &["dba"])],
        "bot"
    ));
}

#[test]
fn two_of_a_group_needs_two_people_and_never_the_requester() {
    let required = vec![req("reviewers", 2)];
    assert!(!satisfied(
        &required,
        &[review("a", &["reviewers"]), review("bot", &["reviewers"])],
        "bot"
    ));
    assert!(satisfied(
        &required,
        &[review("a", &["reviewers"]), review("b", &["reviewers"])],
        "bot"
    ));
}

#[test]
fn requirements_merge_per_group_with_the_largest_count() {
    let merged = merge_requirements(&[
        ApprovalRequirement {
            group: "r".into(),
            count: 1,
            policy: "p1".into(),
        },
        ApprovalRequirement {
            group: "r".into(),
            count: 2,
            policy: "p2".into(),
        },
    ]);
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].count, 2);
    assert_eq!(merged[0].policies, vec!["p1", "p2"]);
}

const POLICY: &str = r#"
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"db");
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource in Tollgate::Connection::"db");
@approval("reviewers")
@approvals("2")
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:delete", resource in Tollgate::Connection::"db");
"#;

struct Fx {
    gw: Arc<Gateway>,
    gate: Arc<ApprovalService>,
    conn: Arc<FakeConnector>,
    audit: Arc<MemoryStore>,
}

fn fx(policy: &str) -> Fx {
    let audit = Arc::new(MemoryStore::default());
    let store = Arc::new(MemoryApprovalStore::default());
    let gate = Arc::new(ApprovalService::new(
        store,
        audit.clone(),
        ApprovalConfig {
            wait: Duration::from_millis(200),
            poll: Duration::from_millis(20),
            ..Default::default()
        },
    ));
    let conn = Arc::new(FakeConnector::new("db", "done"));
    let engine = PolicyEngine::new(
        crate::test_util::policy_schema(),
        &load_sources(vec![("p.cedar".into(), policy.into())]),
    )
    .unwrap();
    let gw = GatewayBuilder::new(engine, audit.clone())
        .connection(conn.clone())
        .approvals(gate.clone())
        .build()
        .unwrap();
    Fx {
        gw: Arc::new(gw),
        gate,
        conn,
        audit,
    }
}

fn bot() -> Principal {
    p("bot", &["agents", "reviewers"])
}

async fn delete(f: &Fx, sql: &str) -> crate::CallResult {
    f.gw.call(
        &bot(),
        "fake_query",
        json!({"connection": "db", "sql": sql}),
        &CallContext::default(),
    )
    .await
}

async fn wait(f: &Fx, id: &str) -> crate::CallResult {
    f.gw.call(
        &bot(),
        "approval_wait",
        json!({"approval_id": id, "timeout_seconds": 0}),
        &CallContext::default(),
    )
    .await
}

fn id_of(r: &crate::CallResult) -> String {
    assert_eq!(r.structured["status"], "pending_approval", "{r:?}");
    r.structured["approval_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn two_distinct_reviewers_then_exactly_one_execution() {
    let f = fx(POLICY);
    let r = delete(&f, "write").await;
    assert!(!r.is_error);
    let id = id_of(&r);
    // Same call again while pending: the same approval.
    assert_eq!(id_of(&delete(&f, "write").await), id);
    // The requester cannot approve, even as a reviewer.
    let own = f.gate.approve(&id, &bot(), None).await.unwrap_err();
    assert!(matches!(own, ReviewError::Refused(DecideError::OwnCall)));
    // Not a reviewer.
    let stranger = f.gate.approve(&id, &p("eve", &["agents"]), None).await;
    assert!(matches!(
        stranger,
        Err(ReviewError::Refused(DecideError::NotReviewer(_)))
    ));
    let a = f
        .gate
        .approve(&id, &p("alice", &["reviewers", "dba"]), Some("ok".into()))
        .await
        .unwrap();
    assert_eq!(a.state, ApprovalState::Pending);
    let again = f.gate.approve(&id, &p("alice", &["reviewers"]), None).await;
    assert!(matches!(
        again,
        Err(ReviewError::Refused(DecideError::AlreadyDecided))
    ));
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 0);
    let a = f
        .gate
        .approve(&id, &p("bob", &["reviewers"]), None)
        .await
        .unwrap();
    assert_eq!(a.state, ApprovalState::Approved);
    // Two racing approval_wait calls: exactly one execution.
    let (r1, r2) = tokio::join!(wait(&f, &id), wait(&f, &id));
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 1);
    assert_eq!(
        [r1.is_error, r2.is_error].iter().filter(|e| !**e).count(),
        1,
        "{r1:?} {r2:?}"
    );
    let a = f.gate.get_for(&id, &bot(), true).await.unwrap();
    assert_eq!(a.state, ApprovalState::Executed);
    // The record says when it ran and how many items it counted, and keeps
    // the family's review.
    assert_eq!(a.items, Some(1));
    assert!(a.finished_at.is_some_and(|t| t >= a.claimed_at.unwrap()));
    assert_eq!(a.review.title, "sql:delete on main.t");
    assert_eq!(a.review.runs[0].text.joined(), "write");
    assert_eq!(a.view("u")["items"], 1);
    // And the approval cannot be replayed: "used", not "denied".
    let r3 = wait(&f, &id).await;
    assert!(r3.is_error);
    assert_eq!(r3.structured["error"]["code"], "approval_used", "{r3:?}");
    let loser = if r1.is_error { &r1 } else { &r2 };
    assert_eq!(
        loser.structured["error"]["code"], "approval_used",
        "{loser:?}"
    );
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 1);
    let events = f.audit.events.lock().unwrap().clone();
    let transitions: Vec<String> = events
        .iter()
        .filter(|e| e.record.tool == service::AUDIT_TOOL)
        .map(|e| e.record.arguments["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        transitions,
        ["created", "approve", "approve", "approved", "executed"]
    );
}

#[tokio::test]
async fn other_arguments_are_not_covered_and_deny_needs_a_reason() {
    let f = fx(POLICY);
    let id = id_of(&delete(&f, "write").await);
    let other = id_of(&delete(&f, "write-all").await);
    assert_ne!(id, other, "different arguments, different approval");
    let no_reason = f.gate.deny(&id, &p("alice", &["reviewers"]), None).await;
    assert!(matches!(
        no_reason,
        Err(ReviewError::Refused(DecideError::ReasonRequired))
    ));
    f.gate
        .deny(&id, &p("alice", &["reviewers"]), Some("too broad".into()))
        .await
        .unwrap();
    let r = wait(&f, &id).await;
    assert!(r.is_error);
    assert!(
        r.structured["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too broad")
    );
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn policy_changed_to_deny_after_approval_runs_nothing() {
    let f = fx(POLICY);
    let id = id_of(&delete(&f, "write").await);
    for who in ["alice", "bob"] {
        f.gate
            .approve(&id, &p(who, &["reviewers"]), None)
            .await
            .unwrap();
    }
    let without_delete: String = POLICY.lines().take(3).collect::<Vec<_>>().join("\n");
    f.gw.set_policy(
        PolicyEngine::new(
            crate::test_util::policy_schema(),
            &load_sources(vec![("p.cedar".into(), without_delete)]),
        )
        .unwrap(),
    );
    let r = wait(&f, &id).await;
    assert!(r.is_error);
    assert_eq!(r.structured["error"]["code"], "denied");
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_approval_covers_what_was_reviewed_not_a_changed_target() {
    let f = fx(POLICY);
    let id = id_of(&delete(&f, "write").await);
    for who in ["alice", "bob"] {
        f.gate
            .approve(&id, &p(who, &["reviewers"]), None)
            .await
            .unwrap();
    }
    // Same arguments, but the target changed after the reviewers decided
    // (e.g. the object to delete was replaced): the approval does not cover it.
    *f.conn.target.lock().unwrap() = " (replaced)".into();
    let r = wait(&f, &id).await;
    assert!(r.is_error, "{r:?}");
    let message = r.structured["error"]["message"].as_str().unwrap();
    assert!(message.contains("different review"), "{message}");
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 0);
    // Calling again asks for a new approval of what it would do now.
    let fresh = id_of(&delete(&f, "write").await);
    assert_ne!(fresh, id);
    // Back to what was reviewed: the first approval runs, once.
    f.conn.target.lock().unwrap().clear();
    let r = wait(&f, &id).await;
    assert!(!r.is_error, "{r:?}");
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn expired_approval_is_refused() {
    let f = fx(POLICY);
    let id = id_of(&delete(&f, "write").await);
    // Force expiry through the store.
    let mut a = f.gate.get_for(&id, &bot(), true).await.unwrap();
    a.expires_at = Utc::now() - chrono::Duration::seconds(1);
    assert!(f.gate.store.update(&a).await.unwrap());
    let r = wait(&f, &id).await;
    assert!(r.is_error);
    assert!(
        r.structured["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let late = f.gate.approve(&id, &p("alice", &["reviewers"]), None).await;
    assert!(matches!(
        late,
        Err(ReviewError::Refused(DecideError::NotPending { .. }))
    ));
}

#[tokio::test]
async fn pending_count_counts_only_what_still_waits() {
    let f = fx(POLICY);
    assert_eq!(f.gate.pending_count().await.unwrap(), 0);
    let first = id_of(&delete(&f, "write").await);
    let second = id_of(&delete(&f, "write-all").await);
    // Asking again for the same call is the same approval.
    id_of(&delete(&f, "write").await);
    assert_eq!(f.gate.pending_count().await.unwrap(), 2);
    id_of(
        &f.gw
            .call(
                &p("other-bot", &["agents"]),
                "fake_query",
                json!({"connection": "db", "sql": "write"}),
                &CallContext::default(),
            )
            .await,
    );
    assert_eq!(f.gate.pending_count().await.unwrap(), 3);
    // Denied: no longer waiting.
    f.gate
        .deny(&first, &p("alice", &["reviewers"]), Some("no".into()))
        .await
        .unwrap();
    assert_eq!(f.gate.pending_count().await.unwrap(), 2);
    // Past its expiry but not yet swept: not counted either.
    let mut a = f.gate.get_for(&second, &bot(), true).await.unwrap();
    a.expires_at = Utc::now() - chrono::Duration::seconds(1);
    assert!(f.gate.store.update(&a).await.unwrap());
    assert_eq!(
        f.gate.store.get(&second).await.unwrap().unwrap().state,
        ApprovalState::Pending
    );
    assert_eq!(f.gate.pending_count().await.unwrap(), 1);
}

struct Cancelled;
impl CancelSignal for Cancelled {
    fn cancelled(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

#[tokio::test]
async fn agent_cancellation_cancels_the_pending_approval() {
    let f = fx(POLICY);
    let ctx = CallContext {
        cancel: Some(&Cancelled),
        ..Default::default()
    };
    let r =
        f.gw.call(
            &bot(),
            "fake_query",
            json!({"connection": "db", "sql": "write"}),
            &ctx,
        )
        .await;
    assert!(r.is_error, "{r:?}");
    let list = f
        .gate
        .list_for(&bot(), Some(ApprovalState::Cancelled), true, 10)
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    let _: Value = f.gate.view(&list[0]);
}

/// Every `approval_wait` with arguments outside its declared schema is
/// refused with `invalid_arguments`, never panics, and leaves an audit event.
#[tokio::test]
async fn approval_wait_refuses_out_of_schema_arguments_and_audits_them() {
    let f = fx(POLICY);
    let id = id_of(&delete(&f, "write").await);
    let schema = crate::builtin::specs()
        .into_iter()
        .find(|t| t.name == "approval_wait")
        .unwrap()
        .input_schema;
    assert_eq!(
        schema["properties"]["timeout_seconds"]["maximum"],
        crate::builtin::MAX_WAIT_SECONDS
    );
    let bad = [
        json!({"approval_id": id, "timeout_seconds": u64::MAX}),
        json!({"approval_id": id, "timeout_seconds": 3601}),
        json!({"approval_id": id, "timeout_seconds": -1}),
        json!({"approval_id": id, "timeout_seconds": 1.5}),
        json!({"approval_id": id, "timeout_seconds": "5"}),
        json!({"approval_id": id, "extra": true}),
        json!({"timeout_seconds": 1}),
        json!("not an object"),
    ];
    for args in bad {
        let before = f.audit.events.lock().unwrap().len();
        let r =
            f.gw.call(
                &bot(),
                "approval_wait",
                args.clone(),
                &CallContext::default(),
            )
            .await;
        assert!(r.is_error, "{args}: {r:?}");
        assert_eq!(r.structured["error"]["code"], "invalid_arguments", "{args}");
        let events = f.audit.events.lock().unwrap();
        assert_eq!(events.len(), before + 1, "{args}: one audit event");
        let last = &events.last().unwrap().record;
        assert_eq!(last.tool, "approval_wait", "{args}");
        assert_eq!(last.decision, "error", "{args}");
    }
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 0, "nothing ran");
    // The largest declared value is accepted (the approval is still pending).
    let r =
        f.gw.call(
            &bot(),
            "approval_wait",
            json!({"approval_id": id, "timeout_seconds": 0}),
            &CallContext::default(),
        )
        .await;
    assert_eq!(r.structured["status"], "pending_approval", "{r:?}");
}

/// A wait too long for an `Instant` (a transport or config value) is not a panic.
#[tokio::test]
async fn an_endless_wait_does_not_overflow() {
    let f = fx(POLICY);
    let ctx = CallContext {
        cancel: Some(&Cancelled),
        wait: Some(Duration::MAX),
        ..Default::default()
    };
    let r =
        f.gw.call(
            &bot(),
            "fake_query",
            json!({"connection": "db", "sql": "write"}),
            &ctx,
        )
        .await;
    assert!(r.is_error, "cancelled: {r:?}");
}

/// `approval_wait` on someone else's approval id, or on an id that does not
/// exist, is an audit event of the caller (with the id it tried), and runs
/// nothing.
#[tokio::test]
async fn approval_wait_on_a_foreign_or_unknown_id_is_audited() {
    let f = fx(POLICY);
    let id = id_of(&delete(&f, "write").await);
    let mallory = p("mallory", &["agents"]);
    for tried in [id.as_str(), "apr_does_not_exist"] {
        let before = f.audit.events.lock().unwrap().len();
        let r =
            f.gw.call(
                &mallory,
                "approval_wait",
                json!({"approval_id": tried, "timeout_seconds": 0}),
                &CallContext::default(),
            )
            .await;
        assert!(r.is_error, "{tried}: {r:?}");
        let events = f.audit.events.lock().unwrap();
        assert_eq!(events.len(), before + 1, "{tried}: one audit event");
        let last = &events.last().unwrap().record;
        assert_eq!(last.tool, "approval_wait");
        assert_eq!(last.principal.sub, "mallory");
        assert_eq!(last.arguments["approval_id"], tried);
        assert_eq!(last.decision, "deny", "{tried}");
        assert_eq!(r.structured["error"]["code"], "invalid_arguments");
    }
    assert_eq!(f.conn.executed.load(Ordering::SeqCst), 0, "nothing ran");
}
