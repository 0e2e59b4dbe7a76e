//! Classification through the whole in-process gateway, with NO column rule:
//! after a run, values computed from columns whose sampled values the
//! detectors flag (`hex(email)`, `upper(email)`, SSN pieces joined) come back
//! masked; columns not flagged stay raw; exempt columns are never classified;
//! pinned columns are masked; `sql_schema` shows the classification; the run
//! is an audit event that holds no sampled value; and `tollgate demo` leaks
//! no `hex(email)` on its first call.

use std::sync::Arc;

use gateway_core::approval::CallContext;
use gateway_core::audit::AuditFilter;
use gateway_core::{Gateway, Principal};
use serde_json::{Value, json};
use tollgate_server::config::Config;
use tollgate_tests::TempDir;

const POLICY: &str = r#"
@id("agents-connect")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource);
@id("agents-read")
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource in Tollgate::Connection::"shop");
"#;

/// Rows of the fixture: (email, ssn, city, memo, tax_id).
fn fixture() -> Vec<(String, String, String, String, String)> {
    (0..20)
        .map(|i| {
            (
                format!("person{i}.{}@example.org", i * 7),
                format!("{:03}-{:02}-{:04}", 201 + i, 11 + i, 3001 + i * 13),
                ["Lyon", "Osaka", "Quito", "Perth"][i % 4].to_string(),
                // An email in every memo: flagged, but the column is exempt.
                format!("ask memo{i}@example.net"),
                format!("TX{:06}", 700000 + i * 3),
            )
        })
        .collect()
}

/// The gateway over the fixture, with `more` appended to the config.
async fn setup(
    dir: &TempDir,
    more: &str,
) -> (Arc<Gateway>, Config, Arc<dyn gateway_core::Connector>) {
    let db = dir.path().join("shop.db");
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/test.cedar"), POLICY).unwrap();
    let plain = tollgate_tests::connector(
        "sqlite",
        "setup",
        json!({"path": db.to_str().unwrap(), "create_if_missing": true}),
    );
    tollgate_tests::query(
        &*plain,
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, ssn TEXT, city TEXT, memo TEXT, tax_id TEXT)",
        json!([]),
    )
    .await
    .unwrap();
    for (i, (email, ssn, city, memo, tax)) in fixture().into_iter().enumerate() {
        tollgate_tests::query(
            &*plain,
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)",
            json!([i + 1, email, ssn, city, memo, tax]),
        )
        .await
        .unwrap();
    }
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
data_dir = "data"

[auth]
hs256_secret = "classification-test-secret-0123456789"

[policy]
dir = "policies"

[masking.classification]
sample_rows = 50
threshold = 0.5
exempt = ["shop.main.customers.memo"]
pin = [{{connection = "shop", column = "main.customers.tax_id", type = "TAX_ID"}}]

[[connection]]
name = "shop"
kind = "sqlite"
path = "{db}"
{more}"#,
            db = db.display()
        ),
    )
    .unwrap();
    let config = Config::load(&config).expect("config");
    let gw = tollgate_server::app::gateway(&config)
        .await
        .expect("gateway");
    (gw, config, plain)
}

fn agent() -> Principal {
    Principal {
        sub: "bot".into(),
        groups: vec!["agents".into()],
    }
}

async fn rows(gw: &Gateway, connection: &str, sql: &str) -> Value {
    let r = gw
        .call(
            &agent(),
            "sql_query",
            json!({"connection": connection, "sql": sql}),
            &CallContext::default(),
        )
        .await;
    assert!(!r.is_error, "{sql}: {r:?}");
    r.structured
}

const SQL: &str = "SELECT hex(email), upper(email), substr(ssn,1,3)||substr(ssn,5), city, hex(memo), tax_id FROM customers ORDER BY id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classified_columns_are_masked_in_every_expression_without_rules() {
    let dir = TempDir::new("classify").unwrap();
    let (gw, config, plain) = setup(&dir, "").await;
    let raw = tollgate_tests::query(&*plain, SQL, json!([]))
        .await
        .unwrap();
    let raw_rows = raw["rows"].as_array().unwrap().clone();
    assert_eq!(raw_rows.len(), 20);

    // Before classification, nothing says hex(email) is sensitive.
    let before = rows(&gw, "shop", "SELECT hex(email) FROM customers ORDER BY id").await;
    assert_eq!(before["rows"][0][0], raw_rows[0][0], "{before}");

    let classifier = tollgate_server::classify::classifier(&config, &gw).unwrap();
    let runs = tollgate_server::classify::run_once(&gw, &classifier).await;
    assert_eq!(runs.len(), 1);
    let report = runs[0].result.as_ref().unwrap().as_ref().unwrap();
    let classified: Vec<(String, String)> = report
        .classified
        .iter()
        .map(|f| (f.field.to_string(), f.type_name.clone()))
        .collect();
    assert!(
        classified.contains(&("main.customers.email".into(), "EMAIL".into())),
        "{classified:?}"
    );
    assert!(
        classified.contains(&("main.customers.ssn".into(), "US_SSN".into())),
        "{classified:?}"
    );
    assert!(
        classified.contains(&("main.customers.tax_id".into(), "TAX_ID".into())),
        "{classified:?}"
    );
    assert!(
        !classified
            .iter()
            .any(|(f, _)| f.ends_with(".memo") || f.ends_with(".city")),
        "{classified:?}"
    );
    assert_eq!(report.exempt_fields, 1);

    let got = rows(&gw, "shop", SQL).await;
    let got_rows = got["rows"].as_array().unwrap();
    assert_eq!(got_rows.len(), 20);
    for (g, r) in got_rows.iter().zip(&raw_rows) {
        // Derived from classified columns: masked whole as their type.
        assert_eq!(g[0], json!("[EMAIL]"), "{g}");
        assert_eq!(g[1], json!("[EMAIL]"), "{g}");
        assert_eq!(g[2], json!("[US_SSN]"), "{g}");
        for i in 0..3 {
            assert_ne!(g[i], r[i], "raw value leaked: {g}");
        }
        // Not flagged: raw.
        assert_eq!(g[3], r[3]);
        // Exempt: never classified, so hex of it is not masked.
        assert_eq!(g[4], r[4]);
        // Pinned: masked whatever it holds.
        assert_eq!(g[5], json!("[TAX_ID]"), "{g}");
    }
    let by: Vec<&str> = got["masked_fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["by"] == "classification")
        .filter_map(|f| f["field"].as_str())
        .collect();
    assert!(by.contains(&"main.customers.email"), "{got}");
    assert!(by.contains(&"main.customers.tax_id"), "{got}");

    // sql_schema shows it.
    let schema = gw
        .call(
            &agent(),
            "sql_schema",
            json!({"connection": "shop", "table": "customers"}),
            &CallContext::default(),
        )
        .await;
    assert!(!schema.is_error, "{schema:?}");
    let cols = schema.structured["tables"][0]["columns"]
        .as_array()
        .unwrap();
    let class = |name: &str| {
        cols.iter()
            .find(|c| c["name"] == name)
            .map(|c| c.get("classified").cloned().unwrap_or(Value::Null))
            .unwrap()
    };
    assert_eq!(class("email"), json!("EMAIL"));
    assert_eq!(class("tax_id"), json!("TAX_ID"));
    assert_eq!(class("memo"), Value::Null);
    assert_eq!(class("city"), Value::Null);

    // The run is recorded, with names and counts and no sampled value.
    let events = gw
        .audit()
        .list(&AuditFilter {
            tool: Some(tollgate_server::classify::AUDIT_TOOL.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.record.principal.sub, "tollgate");
    assert_eq!(e.record.connection.as_deref(), Some("shop"));
    assert_eq!(e.record.outcome.status, "ok");
    let text = serde_json::to_string(e).unwrap();
    assert!(text.contains("main.customers.email"), "{text}");
    for (email, ssn, city, memo, tax) in fixture() {
        for v in [email, ssn, memo, tax] {
            assert!(
                !text.contains(&v),
                "sampled value {v} in the audit event: {text}"
            );
        }
        let _ = city;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_connection_is_recorded_and_keeps_its_previous_classification() {
    let dir = TempDir::new("classify-fail").unwrap();
    // Nothing listens on port 1: that connection's run fails, the other's not.
    let (gw, config, _plain) = setup(
        &dir,
        r#"
[[connection]]
name = "down"
kind = "postgres"
url = "postgres://nobody@127.0.0.1:1/none"
"#,
    )
    .await;
    let classifier = tollgate_server::classify::classifier(&config, &gw).unwrap();
    let runs = tollgate_server::classify::run_once(&gw, &classifier).await;
    let run = |name: &str| runs.iter().find(|r| r.connection == name).unwrap();
    assert!(run("down").result.is_err(), "{runs:?}");
    assert!(run("shop").result.is_ok(), "{runs:?}");
    let events = gw
        .audit()
        .list(&AuditFilter {
            tool: Some(tollgate_server::classify::AUDIT_TOOL.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    let down = events
        .iter()
        .find(|e| e.record.connection.as_deref() == Some("down"))
        .unwrap();
    assert_eq!(down.record.outcome.status, "error");
    assert!(down.record.outcome.error.is_some());
    // The rendered CLI text names the failure and keeps no value.
    let text = tollgate_server::commands::masking::render(run("down"));
    assert!(text.contains("classification failed"), "{text}");
    let text = tollgate_server::commands::masking::render(run("shop"));
    assert!(
        text.contains("main.customers.email") && text.contains("EMAIL"),
        "{text}"
    );
    assert!(!text.contains("@example.org"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_leaks_no_hex_email_on_its_first_call() {
    let dir = TempDir::new("classify-demo").unwrap();
    let port = tollgate_tests::free_port();
    let path = tollgate_server::commands::demo::prepare(&format!("127.0.0.1:{port}"), dir.path())
        .await
        .unwrap();
    let config = Config::load(&path).unwrap();
    let gw = tollgate_server::commands::demo::gateway(&config)
        .await
        .unwrap();
    let plain = tollgate_tests::connector(
        "sqlite",
        "raw",
        json!({"path": dir.path().join("demo.db").to_str().unwrap()}),
    );
    let sql = "SELECT hex(email), reverse(email), hex(card_number) FROM customers ORDER BY id";
    let sql = sql.replace("reverse(email)", "upper(email)");
    let raw = tollgate_tests::query(&*plain, &sql, json!([]))
        .await
        .unwrap();
    let got = gw
        .call(
            &Principal {
                sub: "agent-1".into(),
                groups: vec!["agents".into()],
            },
            "sql_query",
            json!({"connection": "demo", "sql": sql}),
            &CallContext::default(),
        )
        .await;
    assert!(!got.is_error, "{got:?}");
    let text = got.structured.to_string();
    let raw_rows = raw["rows"].as_array().unwrap();
    assert_eq!(raw_rows.len(), 48);
    for r in raw_rows {
        for v in r.as_array().unwrap() {
            let v = v.as_str().unwrap();
            assert!(!text.contains(v), "demo leaked {v}");
        }
    }
}

/// Luhn-valid public test card numbers, stored as BIGINT.
const CARDS: [u64; 4] = [
    4111111111111111,
    5555555555554444,
    4012888888881881,
    6011111111111117,
];

/// The fixture of the server families: customers with an email, an SSN
/// and a card number held as a bigint.
fn server_fixture() -> String {
    let mut sql = String::from(
        "CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(100), ssn VARCHAR(20), \
         city VARCHAR(40), card BIGINT, note VARCHAR(100));\n",
    );
    for (i, (email, ssn, city, _, _)) in fixture().into_iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO customers VALUES ({}, '{email}', '{ssn}', '{city}', {}, {});\n",
            i + 1,
            CARDS[i % 4],
            if i % 5 == 0 { "'call back'" } else { "NULL" }
        ));
    }
    sql
}

/// With no rule, after classification, `sql` (first three columns derived
/// from email/SSN/card, the fourth a bare unflagged column) comes back
/// masked through the gateway on a `kind` connection at `url`.
async fn server_family(kind: &str, url: &str, sql: &str) {
    let dir = TempDir::new("classify-family").unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/test.cedar"), POLICY).unwrap();
    let path = dir.path().join("tollgate.toml");
    std::fs::write(
        &path,
        format!(
            r#"[server]
data_dir = "data"

[auth]
hs256_secret = "classification-test-secret-0123456789"

[policy]
dir = "policies"

[[connection]]
name = "shop"
kind = "{kind}"
url = "{url}"
"#
        ),
    )
    .unwrap();
    let config = Config::load(&path).expect("config");
    let gw = tollgate_server::app::gateway(&config)
        .await
        .expect("gateway");
    let plain = tollgate_tests::connector(kind, "shop", json!({"url": url}));
    let raw = tollgate_tests::query(&*plain, sql, json!([]))
        .await
        .unwrap();
    let raw_rows = raw["rows"].as_array().unwrap().clone();
    assert_eq!(raw_rows.len(), 20, "{raw}");
    let classifier = tollgate_server::classify::classifier(&config, &gw).unwrap();
    let runs = tollgate_server::classify::run_once(&gw, &classifier).await;
    let report = runs[0].result.as_ref().unwrap().as_ref().unwrap();
    let types: Vec<(String, String)> = report
        .classified
        .iter()
        .map(|f| (f.field.segments()[2].clone(), f.type_name.clone()))
        .collect();
    for want in [
        ("email", "EMAIL"),
        ("ssn", "US_SSN"),
        ("card", "CREDIT_CARD"),
    ] {
        assert!(
            types.contains(&(want.0.into(), want.1.into())),
            "{kind}: {types:?}"
        );
    }
    assert!(
        !types.iter().any(|(c, _)| c == "city" || c == "note"),
        "{kind}: {types:?}"
    );
    let got = rows(&gw, "shop", sql).await;
    for (g, r) in got["rows"].as_array().unwrap().iter().zip(&raw_rows) {
        assert_eq!(g[0], json!("[EMAIL]"), "{kind}: {g}");
        assert_eq!(g[1], json!("[EMAIL]"), "{kind}: {g}");
        assert_eq!(g[2], json!("[US_SSN]"), "{kind}: {g}");
        assert_eq!(g[3], json!("[CREDIT_CARD]"), "{kind}: {g}");
        for i in 0..4 {
            assert_ne!(g[i], r[i], "{kind}: raw value leaked: {g}");
        }
        assert_eq!(g[4], r[4], "{kind}: an unflagged column stays raw");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_classified_columns_are_masked_without_rules() {
    let server = tollgate_tests::PgServer::start().expect("start PostgreSQL");
    let url = server
        .create_database("shop", &server_fixture())
        .expect("fixture");
    server_family(
        "postgres",
        &url,
        "SELECT encode(convert_to(email, 'UTF8'), 'hex'), upper(email), \
         substr(ssn, 1, 3) || substr(ssn, 5), card + 0, city FROM customers ORDER BY id",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_classified_columns_are_masked_without_rules() {
    let server = tollgate_tests::MariaDbServer::start().expect("start MariaDB");
    let url = server
        .create_database("shop", &server_fixture())
        .expect("fixture");
    server_family(
        "mysql",
        &url,
        "SELECT hex(email), upper(email), concat(substr(ssn, 1, 3), substr(ssn, 5)), \
         card + 0, city FROM customers ORDER BY id",
    )
    .await;
}

#[test]
fn check_refuses_a_bad_classification_section() {
    let dir = TempDir::new("classify-check").unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/test.cedar"), POLICY).unwrap();
    let path = dir.path().join("tollgate.toml");
    std::fs::write(
        &path,
        "[masking.classification]\nthreshold = 1.5\nexempt = [\"nodot\"]\n",
    )
    .unwrap();
    let config = Config::load(&path).expect("parses; check validates");
    let errs = tollgate_server::app::check(&config).join("\n");
    assert!(errs.contains("classification: threshold"), "{errs}");
    assert!(errs.contains(":1:"), "points at the section: {errs}");
}
