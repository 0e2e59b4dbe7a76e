//! OpenTelemetry traces over OTLP: `tollgate serve --stdio` with
//! `[logging] otlp_endpoint` pointing at a receiver this test runs exports,
//! per call, a `tool_call` span and one child span per pipeline stage
//! (route, analysis, policy, intent, execute, mask, audit) in one trace, as
//! OTLP/JSON; no span carries the call's SQL, parameters or results.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use tollgate_tests::{PgServer, TempDir};

const EMAIL: &str = "otlp.secret@example.com";

/// Not a test: the child server. Runs the CLI with `TOLLGATE_CHILD_ARGS`.
#[test]
fn child_server() {
    tollgate_tests::run_child_server_if_asked();
}

/// An OTLP/HTTP receiver on a free loopback port (its own runtime thread):
/// every body POSTed to `/v1/traces`, parsed as JSON.
fn receiver() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = bodies.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            let app = Router::new().route(
                "/v1/traces",
                post(move |body: axum::body::Bytes| {
                    let kept = kept.clone();
                    async move {
                        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        kept.lock().unwrap().push(v);
                        axum::Json(json!({}))
                    }
                }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    (rx.recv().unwrap(), bodies)
}

/// (trace id, span id, parent span id, name) of every exported span.
fn spans(bodies: &[Value]) -> Vec<(String, String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    bodies
        .iter()
        .flat_map(|b| b["resourceSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
        .map(|sp| {
            (
                s(&sp["traceId"]),
                s(&sp["spanId"]),
                s(&sp["parentSpanId"]),
                s(&sp["name"]),
            )
        })
        .collect()
}

#[test]
fn each_call_exports_one_trace_with_a_span_per_stage() {
    let (port, bodies) = receiver();
    let pg = PgServer::start().expect("start PostgreSQL");
    let url = pg
        .create_database(
            "shop",
            &format!(
                "CREATE TABLE customers (id int PRIMARY KEY, email text);
                 INSERT INTO customers VALUES (1, '{EMAIL}');"
            ),
        )
        .unwrap();
    let dir = TempDir::new("otlp").unwrap();
    let config = tollgate_tests::stdio::pg_stdio_config(
        dir.path(),
        r#"permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource);
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource);"#,
        &url,
        &format!("[logging]\notlp_endpoint = \"http://127.0.0.1:{port}\"\n"),
    );
    let log_path = dir.path().join("server.log");
    let mut server = tollgate_tests::stdio::StdioServer::start(&config, &log_path, "otlp");
    for sql in [
        format!("SELECT id FROM customers WHERE email = '{EMAIL}'"),
        "SELECT email FROM customers".to_string(),
    ] {
        let r = server.call("sql_query", json!({"connection": "shop", "sql": sql}));
        assert!(r.get("result").is_some(), "{r}");
    }
    // Closing the session shuts the server down, which flushes the exporter.
    let log = server.finish();
    let mut found = Vec::new();
    for _ in 0..50 {
        found = spans(&bodies.lock().unwrap());
        if found.iter().filter(|s| s.3 == "tool_call").count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let calls: Vec<_> = found.iter().filter(|s| s.3 == "tool_call").collect();
    assert_eq!(calls.len(), 2, "{found:?}\n{log}");
    for call in calls {
        let children: Vec<&str> = found
            .iter()
            .filter(|s| s.0 == call.0 && s.2 == call.1)
            .map(|s| s.3.as_str())
            .collect();
        for stage in [
            "route", "analysis", "policy", "intent", "execute", "mask", "audit",
        ] {
            assert!(
                children.contains(&stage),
                "no {stage} span under the call: {children:?}"
            );
        }
    }
    let exported = serde_json::to_string(&*bodies.lock().unwrap()).unwrap();
    assert!(!exported.contains(EMAIL), "a span carries call data");
    assert!(!exported.contains("SELECT"), "a span carries the SQL");
}
