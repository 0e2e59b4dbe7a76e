//! Unit tests of the policy stage on in-memory policies.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::access::{ContextValue, Resource};

fn sql_ctx(stmt: &str, has_where: bool, functions: &[&str]) -> BTreeMap<String, ContextValue> {
    BTreeMap::from([
        ("statement".into(), ContextValue::String(stmt.into())),
        ("has_where".into(), ContextValue::Bool(has_where)),
        (
            "tables".into(),
            ContextValue::StringSet(BTreeSet::from(["public.orders".to_string()])),
        ),
        (
            "functions".into(),
            ContextValue::StringSet(functions.iter().map(|s| s.to_string()).collect()),
        ),
        (
            "columns".to_string(),
            ContextValue::StringSet(BTreeSet::from(["public.orders.id".to_string()])),
        ),
    ])
}

fn req(action: &str, stmt: &str, has_where: bool, functions: &[&str]) -> AccessRequest {
    AccessRequest {
        action: action.into(),
        resource: crate::test_util::table_resource("shop", "public", "orders"),
        context: sql_ctx(stmt, has_where, functions),
    }
}

fn engine(text: &str) -> PolicyEngine {
    PolicyEngine::new(
        crate::test_util::policy_schema(),
        &load_sources(vec![("test.cedar".into(), text.into())]),
    )
    .unwrap()
}

fn agent() -> Principal {
    Principal {
        sub: "bot".into(),
        groups: vec!["agents".into()],
    }
}

const POLICIES: &str = r#"
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource in Tollgate::Connection::"shop");

@id("no-dangerous-functions")
forbid(principal, action, resource) when { context has functions && context.functions.contains("pg_read_file") };

@approval("reviewers")
@approvals("2")
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:delete", resource in Tollgate::Connection::"shop")
  when { context.has_where };
"#;

#[test]
fn default_deny_names_no_policy() {
    let e = engine(POLICIES);
    let d = e.decide(
        &agent(),
        &[req("sql:update", "UPDATE orders SET x=1", false, &[])],
    );
    match d.verdict {
        Verdict::Deny { message, policies } => {
            assert!(
                message.contains("no policy permits sql:update"),
                "{message}"
            );
            assert!(policies.is_empty());
        }
        v => panic!("expected deny, got {v:?}"),
    }
}

#[test]
fn permit_allows_and_names_policy_by_file_and_line() {
    let e = engine(POLICIES);
    let d = e.decide(
        &agent(),
        &[req("sql:select", "SELECT * FROM orders", true, &["count"])],
    );
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(d.requests[0].policies, vec!["test.cedar:2".to_string()]);
}

#[test]
fn forbid_wins_and_is_named_by_id() {
    let e = engine(POLICIES);
    let d = e.decide(
        &agent(),
        &[req(
            "sql:select",
            "SELECT pg_read_file('x')",
            true,
            &["pg_read_file"],
        )],
    );
    assert_eq!(d.verdict, Verdict::Deny { message: "sql:select on Tollgate::Table::\"shop/public.orders\" is forbidden by no-dangerous-functions".into(), policies: vec!["no-dangerous-functions".into()] });
}

#[test]
fn approval_annotation_asks_for_humans() {
    let e = engine(POLICIES);
    let d = e.decide(
        &agent(),
        &[req(
            "sql:delete",
            "DELETE FROM orders WHERE id=1",
            true,
            &[],
        )],
    );
    assert_eq!(
        d.verdict,
        Verdict::NeedsApproval(vec![ApprovalRequirement {
            group: "reviewers".into(),
            count: 2,
            policy: "test.cedar:7".into()
        }])
    );
    // Without WHERE the approval permit does not apply: plain deny.
    let d = e.decide(
        &agent(),
        &[req("sql:delete", "DELETE FROM orders", false, &[])],
    );
    assert!(matches!(d.verdict, Verdict::Deny { .. }));
}

#[test]
fn one_denied_request_denies_the_call() {
    let e = engine(POLICIES);
    let d = e.decide(
        &agent(),
        &[
            req("sql:select", "SELECT 1", true, &[]),
            req("sql:insert", "INSERT", false, &[]),
        ],
    );
    assert!(matches!(d.verdict, Verdict::Deny { .. }));
    assert!(d.requests[0].allowed && !d.requests[1].allowed);
}

#[test]
fn empty_request_list_is_denied() {
    assert!(matches!(
        engine(POLICIES).decide(&agent(), &[]).verdict,
        Verdict::Deny { .. }
    ));
}

#[test]
fn context_not_matching_schema_is_denied_not_allowed() {
    let e = engine("permit(principal, action, resource);");
    let mut r = req("sql:select", "SELECT 1", true, &[]);
    r.context.remove("functions");
    let d = e.decide(&agent(), &[r]);
    assert!(matches!(d.verdict, Verdict::Deny { .. }), "{d:?}");
    assert!(!d.requests[0].errors.is_empty());
}

#[test]
fn validation_errors_carry_file_line_col() {
    let src = "permit(principal, action, resource);\n\npermit(principal, action == Tollgate::Action::\"sql:select\", resource)\n  when { context.nonsense == 1 };\n";
    let err = PolicyEngine::new(
        crate::test_util::policy_schema(),
        &load_sources(vec![("bad.cedar".into(), src.into())]),
    )
    .unwrap_err();
    let PolicyError::Invalid(diags) = err else {
        panic!()
    };
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(
        (diags[0].path.as_str(), diags[0].line),
        ("bad.cedar", 4),
        "{}",
        diags[0]
    );
}

#[test]
fn parse_errors_carry_file_line_col() {
    let src = "permit(principal, action, resource);\nforbid(principal action, resource);\n";
    let PolicyError::Invalid(diags) = PolicyEngine::new(
        crate::test_util::policy_schema(),
        &load_sources(vec![("p.cedar".into(), src.into())]),
    )
    .unwrap_err() else {
        panic!()
    };
    assert_eq!(diags[0].line, 2, "{}", diags[0]);
    assert!(
        diags[0].to_string().starts_with("p.cedar:2:"),
        "{}",
        diags[0]
    );
}

#[test]
fn unknown_entity_type_in_policy_is_rejected() {
    let src = "permit(principal in Tollgate::Team::\"x\", action, resource);";
    assert!(
        PolicyEngine::new(
            crate::test_util::policy_schema(),
            &load_sources(vec![("p.cedar".into(), src.into())])
        )
        .is_err()
    );
}

#[test]
fn group_membership_and_audit_read() {
    let e = engine(
        "permit(principal in Tollgate::Group::\"auditors\", action == Tollgate::Action::\"audit:read\", resource);",
    );
    let r = AccessRequest {
        action: "audit:read".into(),
        resource: Resource::audit_log(),
        context: BTreeMap::new(),
    };
    assert!(e.is_permitted(
        &Principal {
            sub: "ann".into(),
            groups: vec!["auditors".into()]
        },
        &r
    ));
    assert!(!e.is_permitted(&agent(), &r));
}

// === the decision cache ===

#[test]
fn cached_decision_keys_on_groups_and_context() {
    let e = engine(POLICIES);
    let select = [req("sql:select", "SELECT 1", true, &[])];
    // Same call twice: the second answer (from the cache) equals the first.
    let first = e.decide(&agent(), &select);
    assert_eq!(first.verdict, Verdict::Allow);
    assert_eq!(e.decide(&agent(), &select), first);
    // Same sub, other groups: not the agent's cached allow.
    let outsider = Principal {
        sub: "bot".into(),
        groups: vec!["visitors".into()],
    };
    assert!(matches!(
        e.decide(&outsider, &select).verdict,
        Verdict::Deny { .. }
    ));
    // Same statement, one more function in the context: decided afresh.
    let read_file = [req("sql:select", "SELECT 1", true, &["pg_read_file"])];
    match e.decide(&agent(), &read_file).verdict {
        Verdict::Deny { policies, .. } => assert_eq!(policies, vec!["no-dangerous-functions"]),
        other => panic!("expected the forbid, got {other:?}"),
    }
    // And the earlier answers still stand.
    assert_eq!(e.decide(&agent(), &select), first);
    assert!(e.is_permitted(&agent(), &select[0]));
    assert!(!e.is_permitted(&outsider, &select[0]));
}

#[test]
fn cached_decision_covers_the_whole_call() {
    // A policy that asks about an entity literal: its answer depends on which
    // entities the call brought (here: whether `orders` is in `shop`, which
    // only holds when some request of the call names that table).
    let e = engine(
        r#"permit(principal, action == Tollgate::Action::"connect", resource)
             when { Tollgate::Table::"shop/public.orders" in Tollgate::Connection::"shop" };"#,
    );
    let connect = AccessRequest {
        action: "connect".into(),
        resource: Resource::connection("shop"),
        context: BTreeMap::new(),
    };
    let alone = e.decide(&agent(), std::slice::from_ref(&connect));
    assert!(matches!(alone.verdict, Verdict::Deny { .. }), "{alone:?}");
    let with_table = e.decide(
        &agent(),
        &[connect.clone(), req("sql:select", "SELECT 1", true, &[])],
    );
    assert!(with_table.requests[0].allowed, "{with_table:?}");
    // The single-request call is still denied: the two calls never share an entry.
    assert!(!e.is_permitted(&agent(), &connect));
}

#[test]
fn slicing_by_action_changes_no_decision() {
    let text = format!(
        "{POLICIES}\n@id(\"no-writes-without-where\")\nforbid(principal, action in [Tollgate::Action::\"sql:update\", Tollgate::Action::\"sql:delete\"], resource) when {{ !context.has_where }};\n\
         permit(principal in Tollgate::Group::\"agents\", action == Tollgate::Action::\"connect\", resource);\n\
         permit(principal, action, resource) when {{ context has types && context.types.contains(\"EMAIL\") }};"
    );
    let sliced = engine(&text);
    assert!(
        sliced.by_action.is_some(),
        "the shipped schema has no action groups"
    );
    let mut whole = engine(&text);
    whole.by_action = None;
    let unmask = AccessRequest {
        action: "unmask".into(),
        resource: Resource::connection("shop"),
        context: BTreeMap::from([(
            "types".to_string(),
            ContextValue::StringSet(BTreeSet::from(["EMAIL".to_string()])),
        )]),
    };
    let connect = AccessRequest {
        action: "connect".into(),
        resource: Resource::connection("shop"),
        context: BTreeMap::new(),
    };
    let calls: Vec<Vec<AccessRequest>> = vec![
        vec![connect.clone()],
        vec![connect, req("sql:select", "SELECT 1", true, &[])],
        vec![req(
            "sql:select",
            "SELECT pg_read_file('x')",
            true,
            &["pg_read_file"],
        )],
        vec![req("sql:delete", "DELETE FROM orders", false, &[])],
        vec![req(
            "sql:delete",
            "DELETE FROM orders WHERE id = 1",
            true,
            &[],
        )],
        vec![req("sql:update", "UPDATE orders SET x = 1", false, &[])],
        vec![req("sql:ddl", "DROP TABLE orders", true, &[])],
        vec![unmask],
    ];
    for principal in [
        agent(),
        Principal {
            sub: "x".into(),
            groups: vec![],
        },
    ] {
        for call in &calls {
            assert_eq!(
                sliced.evaluate(&principal, call),
                whole.evaluate(&principal, call),
                "{call:?}"
            );
        }
    }
}

#[test]
fn large_calls_are_decided_but_not_kept() {
    let e = engine(POLICIES);
    let huge = format!("SELECT '{}'", "x".repeat(DECISION_CACHE_MAX_CONTEXT));
    let d = e.decide(&agent(), &[req("sql:select", &huge, true, &[])]);
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(e.decisions.len(), 0, "a large call is not held in memory");
    e.decide(&agent(), &[req("sql:select", "SELECT 1", true, &[])]);
    assert_eq!(e.decisions.len(), 1);
}

const ROW_CAPS: &str = r#"
@id("connect-shop")
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"shop");

@id("bulk-delete")
@max_affected_rows("100")
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:delete", resource in Tollgate::Connection::"shop");

@id("careful-delete")
@max_affected_rows("10")
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:delete", resource in Tollgate::Connection::"shop")
  when { !context.has_where };

@id("update-capped")
@max_affected_rows("5")
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:update", resource in Tollgate::Connection::"shop");

@id("select")
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource in Tollgate::Connection::"shop");
"#;

#[test]
fn max_affected_rows_is_the_strictest_of_the_determining_permits() {
    let e = engine(ROW_CAPS);
    let connect = AccessRequest {
        action: "connect".into(),
        resource: Resource::connection("shop"),
        context: Default::default(),
    };
    let del = req("sql:delete", "DELETE FROM orders WHERE id = 1", true, &[]);
    let d = e.decide(&agent(), &[connect.clone(), del.clone()]);
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(
        d.max_affected,
        Some(AffectedCap {
            rows: 100,
            policy: "bulk-delete".into()
        })
    );
    // Both delete permits determine this allow: the stricter one wins.
    let all = req("sql:delete", "DELETE FROM orders", false, &[]);
    let d = e.decide(&agent(), &[connect.clone(), all]);
    assert_eq!(d.max_affected.as_ref().map(|c| c.rows), Some(10));
    assert_eq!(d.max_affected.unwrap().policy, "careful-delete");
    // Several requests: the smallest cap over all of them.
    let upd = req("sql:update", "UPDATE orders SET x = 1", true, &[]);
    let d = e.decide(&agent(), &[connect.clone(), del, upd]);
    assert_eq!(
        d.max_affected.map(|c| (c.rows, c.policy)),
        Some((5, "update-capped".into()))
    );
    // A call whose permits carry no cap has none.
    let sel = req("sql:select", "SELECT 1 FROM orders", true, &[]);
    assert_eq!(e.decide(&agent(), &[connect, sel]).max_affected, None);
}

#[test]
fn bad_max_affected_rows_is_refused_with_file_and_line() {
    for (value, effect) in [
        ("0", "permit"),
        ("-1", "permit"),
        ("ten", "permit"),
        ("1.5", "permit"),
        (" 10", "permit"),
        ("", "permit"),
        ("10", "forbid"),
    ] {
        let text = format!(
            "\n\n@max_affected_rows(\"{value}\")\n{effect}(principal, action == Tollgate::Action::\"sql:delete\", resource);\n"
        );
        let err = PolicyEngine::new(
            crate::test_util::policy_schema(),
            &load_sources(vec![("caps.cedar".into(), text)]),
        )
        .unwrap_err();
        let PolicyError::Invalid(diags) = err else {
            panic!("expected diagnostics")
        };
        assert_eq!(diags.len(), 1, "{value}: {diags:?}");
        assert_eq!((diags[0].path.as_str(), diags[0].line), ("caps.cedar", 3));
        assert!(
            diags[0].message.contains("@max_affected_rows"),
            "{}",
            diags[0]
        );
    }
}

#[test]
fn a_denial_names_the_permit_that_only_its_condition_kept_from_allowing() {
    let e = engine(POLICIES);
    let d = e.decide(
        &agent(),
        &[req("sql:delete", "DELETE FROM orders", false, &[])],
    );
    match d.verdict {
        Verdict::Deny { message, policies } => {
            assert!(
                message.contains("no policy permits sql:delete")
                    && message.contains("test.cedar:")
                    && message.contains("would permit it but its condition does not hold")
                    && message.contains("when { context.has_where }"),
                "{message}"
            );
            assert!(policies.is_empty());
        }
        v => panic!("expected deny, got {v:?}"),
    }
    // A request no permit covers even without conditions gets no hint.
    let d = e.decide(
        &agent(),
        &[req("sql:update", "UPDATE orders SET x=1", false, &[])],
    );
    let Verdict::Deny { message, .. } = d.verdict else {
        panic!("expected deny")
    };
    assert!(!message.contains("would permit"), "{message}");
}
