//! Policy guards through the whole in-process gateway (config → policies →
//! SQLite connections): `@max_affected_rows` on a permit and
//! `max_affected_rows` on a connection (the stricter wins, the write is
//! rolled back), and `sql_schema` listing only the tables the caller may
//! `sql:select`.

use gateway_core::approval::CallContext;
use gateway_core::{Gateway, Principal};
use serde_json::{Value, json};
use tollgate_server::config::Config;
use tollgate_tests::TempDir;

const POLICY: &str = r#"
@id("agents-connect")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource);
@id("agents-read-orders")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource == Tollgate::Table::"demo/main.orders");
@id("agents-read-orders-tight")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource == Tollgate::Table::"tight/main.orders");
@id("agents-delete")
@max_affected_rows("2")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:delete", resource);
@id("dba-connect")
permit (principal in Tollgate::Group::"dba", action == Tollgate::Action::"connect", resource);
@id("dba-read-all")
permit (principal in Tollgate::Group::"dba", action == Tollgate::Action::"sql:select", resource in Tollgate::Connection::"demo");
"#;

async fn setup(dir: &TempDir) -> std::sync::Arc<Gateway> {
    let db = dir.path().join("demo.db");
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/test.cedar"), POLICY).unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
data_dir = "data"

[auth]
hs256_secret = "policy-guards-test-secret-0123456789"

[policy]
dir = "policies"

# The policy's cap (2) is stricter than this connection's.
[[connection]]
name = "demo"
kind = "sqlite"
path = "{db}"
create_if_missing = true
max_affected_rows = 3

# This connection's cap (1) is stricter than the policy's.
[[connection]]
name = "tight"
kind = "sqlite"
path = "{db}"
max_affected_rows = 1
"#,
            db = db.display()
        ),
    )
    .unwrap();
    let config = Config::load(&config).expect("config");
    let gw = tollgate_server::app::gateway(&config)
        .await
        .expect("gateway");
    // Fixture through a plain connector (the gateway's policies allow no DDL).
    let c = tollgate_tests::connector(
        "sqlite",
        "setup",
        json!({"path": db.to_str().unwrap(), "create_if_missing": true}),
    );
    for sql in [
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT)",
        "INSERT INTO orders VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e')",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT)",
        "CREATE TABLE secrets (id INTEGER PRIMARY KEY, token TEXT)",
    ] {
        tollgate_tests::query(&*c, sql, json!([])).await.unwrap();
    }
    gw
}

fn who(sub: &str, group: &str) -> Principal {
    Principal {
        sub: sub.into(),
        groups: vec![group.into()],
    }
}

async fn run(gw: &Gateway, p: &Principal, tool: &str, args: Value) -> gateway_core::CallResult {
    gw.call(p, tool, args, &CallContext::default()).await
}

async fn orders(gw: &Gateway) -> i64 {
    let r = run(
        gw,
        &who("bot", "agents"),
        "sql_query",
        json!({"connection": "demo", "sql": "SELECT count(*) FROM orders"}),
    )
    .await;
    assert!(!r.is_error, "{r:?}");
    r.structured["rows"][0][0].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_affected_rows_through_the_gateway_stricter_wins() {
    let dir = TempDir::new("policy-guards").unwrap();
    let gw = setup(&dir).await;
    let bot = who("bot", "agents");
    let delete = |conn: &str, sql: &str| json!({"connection": conn, "sql": sql});
    assert_eq!(orders(&gw).await, 5);

    // The permit's cap (2) is stricter than the connection's (3).
    let r = run(
        &gw,
        &bot,
        "sql_query",
        delete("demo", "DELETE FROM orders WHERE id IS NOT NULL"),
    )
    .await;
    assert!(r.is_error, "{r:?}");
    assert_eq!(r.structured["error"]["code"], "too_many_affected_rows");
    assert_eq!(
        r.structured["error"]["message"],
        "this call would affect 5 rows, more than the 2 allowed by policy `agents-delete`; nothing was changed"
    );
    assert_eq!(orders(&gw).await, 5, "nothing was deleted");
    let r = run(
        &gw,
        &bot,
        "sql_query",
        delete("demo", "DELETE FROM orders WHERE id IN (1, 2, 3)"),
    )
    .await;
    assert!(
        r.is_error,
        "3 rows > the policy's 2, though within the connection's 3"
    );
    assert_eq!(orders(&gw).await, 5);

    // Within both caps: committed.
    let r = run(
        &gw,
        &bot,
        "sql_query",
        delete("demo", "DELETE FROM orders WHERE id IN (1, 2)"),
    )
    .await;
    assert!(!r.is_error, "{r:?}");
    assert_eq!(orders(&gw).await, 3);

    // The connection's cap (1) is stricter than the permit's (2).
    let r = run(
        &gw,
        &bot,
        "sql_query",
        delete("tight", "DELETE FROM orders WHERE id IN (3, 4)"),
    )
    .await;
    assert!(r.is_error, "{r:?}");
    assert_eq!(
        r.structured["error"]["message"],
        "this call would affect 2 rows, more than the 1 allowed by connection `tight`; nothing was changed"
    );
    assert_eq!(orders(&gw).await, 3);
    let r = run(
        &gw,
        &bot,
        "sql_query",
        delete("tight", "DELETE FROM orders WHERE id = 3"),
    )
    .await;
    assert!(!r.is_error, "{r:?}");
    assert_eq!(orders(&gw).await, 2);
}

fn names(r: &gateway_core::CallResult) -> Vec<String> {
    r.structured["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("no tables: {r:?}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_schema_lists_only_tables_the_caller_may_select() {
    let dir = TempDir::new("policy-guards").unwrap();
    let gw = setup(&dir).await;
    let args = json!({"connection": "demo"});
    let r = run(&gw, &who("bot", "agents"), "sql_schema", args.clone()).await;
    assert!(!r.is_error, "{r:?}");
    assert_eq!(names(&r), ["orders"]);
    assert!(r.structured.get("hidden").is_none(), "no count: {r:?}");
    assert!(
        !r.structured.to_string().contains("email") && !r.structured.to_string().contains("token"),
        "no column of a hidden table: {r:?}"
    );
    // Asking for a hidden table by name shows nothing either, exactly as
    // for a table that does not exist (no confirmation that it does).
    let ask = |table: &str| json!({"connection": "demo", "table": table});
    let hidden = run(&gw, &who("bot", "agents"), "sql_schema", ask("secrets")).await;
    let missing = run(&gw, &who("bot", "agents"), "sql_schema", ask("nope")).await;
    assert_eq!(names(&hidden), Vec::<String>::new());
    assert_eq!(hidden.structured, missing.structured);
    // A principal who may select everything sees every table.
    let r = run(&gw, &who("ann", "dba"), "sql_schema", args).await;
    assert_eq!(names(&r), ["customers", "orders", "secrets"]);
}

/// `tollgate check` (app::check) refuses a bad `@max_affected_rows` with
/// file:line and a bad `max_affected_rows` connection key by name.
#[test]
fn check_refuses_bad_caps() {
    let dir = TempDir::new("policy-guards-check").unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/caps.cedar"),
        "// caps\n@id(\"p\")\n@max_affected_rows(\"ten\")\npermit (principal, action == Tollgate::Action::\"sql:delete\", resource);\n",
    )
    .unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"data\"\n\n[auth]\nhs256_secret = \"policy-guards-test-secret-0123456789\"\n\n[policy]\ndir = \"policies\"\n\n[[connection]]\nname = \"demo\"\nkind = \"sqlite\"\npath = \"{}\"\nmax_affected_rows = 0\n",
            dir.path().join("x.db").display()
        ),
    )
    .unwrap();
    let config = Config::load(&config).expect("config parses");
    let errs = tollgate_server::app::check(&config).join("\n");
    assert!(
        errs.contains("caps.cedar:2:1: @max_affected_rows must be a whole number >= 1"),
        "{errs}"
    );
    assert!(
        errs.contains("`max_affected_rows` must be a positive integer"),
        "{errs}"
    );
}
