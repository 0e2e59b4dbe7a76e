//! Policy-stage benchmark (`cargo bench -p gateway-core --bench policy`):
//! time per call decision for a `sql_query` call's two requests (`connect`
//! and `sql:select` on a table) against an example-sized policy set, cold
//! (new statement text on every call, so the decision cache never hits) and
//! warm (the same call again), with the cold/warm ratio.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use gateway_core::Principal;
use gateway_core::access::{AccessRequest, ContextValue, Resource};
use gateway_core::policy::{PolicyEngine, PolicySchema, Vocabulary, load_sources};

const POLICIES: &str = r#"
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource == Tollgate::Connection::"shop");
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource in Tollgate::Connection::"shop");
@id("no-dangerous-functions")
forbid(principal, action, resource) when { context has functions && context.functions.containsAny(["pg_read_file", "pg_sleep", "lo_import", "dblink"]) };
@id("no-writes-without-where")
forbid(principal, action in [Tollgate::Action::"sql:update", Tollgate::Action::"sql:delete"], resource) when { !context.has_where };
@approval("dba")
permit(principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:delete", resource in Tollgate::Connection::"shop") when { context.has_where };
"#;

fn call(statement: String) -> Vec<AccessRequest> {
    let context = BTreeMap::from([
        ("statement".to_string(), ContextValue::String(statement)),
        ("has_where".to_string(), ContextValue::Bool(true)),
        (
            "tables".to_string(),
            ContextValue::StringSet(BTreeSet::from(["public.orders".to_string()])),
        ),
        (
            "functions".to_string(),
            ContextValue::StringSet(BTreeSet::new()),
        ),
        (
            "columns".to_string(),
            ContextValue::StringSet(BTreeSet::from(["public.orders.id".to_string()])),
        ),
    ]);
    vec![
        AccessRequest {
            action: "connect".into(),
            resource: Resource::connection("shop"),
            context: BTreeMap::new(),
        },
        AccessRequest {
            action: "sql:select".into(),
            resource: Resource::new("Table", "shop/public.orders")
                .within(Resource::connection("shop")),
            context,
        },
    ]
}

fn main() {
    let sql = Vocabulary {
        family: "sql",
        fragment: include_str!("../../schemas/sql.cedarschema"),
        unmask_resources: &["Table"],
    };
    let schema = Arc::new(PolicySchema::combine(&[sql]).expect("schema"));
    let engine = PolicyEngine::new(
        schema,
        &load_sources(vec![("bench.cedar".into(), POLICIES.into())]),
    )
    .expect("policies");
    let agent = Principal {
        sub: "agent-7".into(),
        groups: vec!["agents".into(), "analysts".into()],
    };
    let n = 20_000;
    let calls: Vec<_> = (0..n)
        .map(|i| call(format!("SELECT id, status FROM orders WHERE id = {i}")))
        .collect();
    let t = Instant::now();
    for c in &calls {
        black_box(engine.decide(&agent, c));
    }
    let cold = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        black_box(engine.decide(&agent, &calls[0]));
    }
    let warm = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("policy stage, one sql_query call (connect + sql:select), {n} calls each:");
    println!("  cold (new statement every call): {cold:8.2} µs per call");
    println!(
        "  warm (decision cache hit):        {warm:8.2} µs per call   cold/warm {:.1}x",
        cold / warm
    );
}
