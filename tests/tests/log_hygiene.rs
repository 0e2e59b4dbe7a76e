//! The server log holds no raw tool arguments, SQL or results, even at
//! `RUST_LOG=trace`: `tollgate serve --stdio` (this test binary re-executed)
//! on a real PostgreSQL runs calls whose SQL, params and results carry an
//! e-mail address and a card number, and its stderr must hold neither.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_tests::{PgServer, TempDir};

const EMAIL: &str = "ada.secret@example.com";
const CARD: &str = "4111111111111111";

/// Not a test: the child server. Runs the CLI with `TOLLGATE_CHILD_ARGS`.
#[test]
fn child_server() {
    tollgate_tests::run_child_server_if_asked();
}

#[test]
fn trace_log_holds_no_raw_arguments_or_results() {
    let pg = PgServer::start().expect("start PostgreSQL");
    let url = pg
        .create_database(
            "shop",
            &format!(
                "CREATE TABLE customers (id int PRIMARY KEY, email text, card text);
                 INSERT INTO customers VALUES (1, '{EMAIL}', '{CARD}');"
            ),
        )
        .unwrap();
    let dir = TempDir::new("log-hygiene").unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/p.cedar"),
        r#"permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource);
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource);
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:update", resource);"#,
    )
    .unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
data_dir = "data"

[auth]
hs256_secret = "log-hygiene-test-secret-0123456789abcdef"

[policy]
dir = "policies"

[stdio]
sub = "bot"
groups = ["agents"]

[[connection]]
name = "shop"
kind = "postgres"
url = "{url}"
"#
        ),
    )
    .unwrap();
    let log_path = dir.path().join("server.log");
    let args = [
        "tollgate",
        "serve",
        "--stdio",
        "--config",
        config.to_str().unwrap(),
    ];
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_server", "--exact", "--nocapture", "--test-threads=1"])
        .env("TOLLGATE_CHILD_ARGS", serde_json::to_string(&args).unwrap())
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("spawn server");
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        // The re-executed test binary prints libtest text too (even before
        // the first message on its line): keep JSON-RPC only.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let json = line.find('{').map_or("", |i| &line[i..]);
            if let Ok(v) = serde_json::from_str::<Value>(json)
                && v.get("jsonrpc").is_some()
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    let mut send = |v: Value| {
        writeln!(stdin, "{v}").unwrap();
        stdin.flush().unwrap();
    };
    let reply = |id: i64| -> Value {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Ok(v) = rx.recv_timeout(Duration::from_secs(1))
                && v["id"] == id
            {
                return v;
            }
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("no reply to request {id}; server log:\n{log}");
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "log-hygiene", "version": "1"}}}),
    );
    reply(1);
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let calls = [
        json!({"sql": format!("SELECT id FROM customers WHERE email = '{EMAIL}' OR card = '{CARD}'")}),
        json!({"sql": "SELECT id FROM customers WHERE email = $1 OR card = $2", "params": [EMAIL, CARD]}),
        json!({"sql": "SELECT email, card FROM customers"}),
        json!({"sql": format!("UPDATE customers SET card = '{CARD}' WHERE email = '{EMAIL}'")}),
        // A target error that quotes the value.
        json!({"sql": format!("SELECT '{EMAIL}'::int")}),
    ];
    for (i, mut args) in calls.into_iter().enumerate() {
        args["connection"] = json!("shop");
        let id = 10 + i as i64;
        send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "sql_query", "arguments": args}}));
        let r = reply(id);
        assert!(r.get("result").is_some(), "{r}");
    }
    drop(stdin);
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the server did not log at debug/trace, so this test proves nothing:\n{log}"
    );
    for (what, secret) in [("e-mail", EMAIL), ("card number", CARD)] {
        assert!(
            !log.contains(secret),
            "the server log holds the raw {what}:\n{}",
            log.lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
