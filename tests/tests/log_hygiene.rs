//! The server log holds no raw tool arguments, SQL or results, even at
//! `RUST_LOG=trace`: `tollgate serve --stdio` (this test binary re-executed)
//! on a real PostgreSQL runs calls whose SQL, params and results carry an
//! e-mail address and a card number, and its stderr must hold neither.

use serde_json::json;
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
    let config = tollgate_tests::stdio::pg_stdio_config(
        dir.path(),
        r#"permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"connect", resource);
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:select", resource);
permit (principal in Tollgate::Group::"agents", action == Tollgate::Action::"sql:update", resource);"#,
        &url,
        "[auth]\nhs256_secret = \"log-hygiene-test-secret-0123456789abcdef\"\n",
    );
    let log_path = dir.path().join("server.log");
    let mut server = tollgate_tests::stdio::StdioServer::start(&config, &log_path, "log-hygiene");
    let calls = [
        json!({"sql": format!("SELECT id FROM customers WHERE email = '{EMAIL}' OR card = '{CARD}'")}),
        json!({"sql": "SELECT id FROM customers WHERE email = $1 OR card = $2", "params": [EMAIL, CARD]}),
        json!({"sql": "SELECT email, card FROM customers"}),
        json!({"sql": format!("UPDATE customers SET card = '{CARD}' WHERE email = '{EMAIL}'")}),
        // A target error that quotes the value.
        json!({"sql": format!("SELECT '{EMAIL}'::int")}),
    ];
    let n = calls.len();
    for mut args in calls {
        args["connection"] = json!("shop");
        let r = server.call("sql_query", args);
        assert!(r.get("result").is_some(), "{r}");
    }
    let log = server.finish();
    // One structured line per call (target `tollgate::call`), plain text
    // (stderr is not a terminal: no colour codes), naming the audit event.
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("tollgate::call"))
        .collect();
    assert_eq!(
        lines.len(),
        n,
        "one call line per call:\n{}",
        lines.join("\n")
    );
    for line in &lines {
        assert!(
            line.contains("tool=sql_query") && line.contains("principal=bot"),
            "{line}"
        );
        assert!(
            line.contains("audit_seq=") && line.contains("recorded=true"),
            "{line}"
        );
    }
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal"
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
