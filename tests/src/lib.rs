//! Integration test support: throwaway database servers started on free
//! loopback ports in temp dirs and stopped (and deleted) on drop, plus small
//! helpers to drive a connector through `analyse` + `execute`.
//!
//! Never uses the machine's own servers (5432/3306). Missing binaries are a
//! hard failure naming the package to install, never a skip. Several test
//! binaries may run at once: every server gets its own port and directory.

pub mod bench;
pub mod depot;
pub mod kube;
pub mod kubelet;
pub mod load;
pub mod mariadb;
pub mod mcp_stdio;
pub mod pg;
pub mod served;
pub mod sshd;
pub mod stdio;
pub mod util;

pub use mariadb::MariaDbServer;
pub use pg::PgServer;
pub use util::{TempDir, free_port};

use std::sync::Arc;

use gateway_core::connector::{Connector, ExecLimits, ExecuteError, ToolOutput};
use serde_json::Value;

/// Generous default limits for tests (the connection's own caps apply too):
/// no time budget, never cancelled.
pub fn limits() -> ExecLimits {
    ExecLimits {
        max_items: Some(100_000),
        max_bytes: 64 * 1024 * 1024,
        max_affected: None,
        timeout: None,
        cancel: Default::default(),
        caller: None,
        progress: None,
        intent: Default::default(),
    }
}

/// Build a connector of `kind` from a JSON config table.
pub fn connector(kind: &str, name: &str, config: Value) -> Arc<dyn Connector> {
    let factory = tollgate_sql::SqlConnectorFactory::all()
        .into_iter()
        .find(|f| f.kind() == kind)
        .unwrap_or_else(|| panic!("no factory for kind {kind}"));
    factory
        .build(name, &config)
        .unwrap_or_else(|e| panic!("build {kind} connector: {e}"))
}

/// Prepare, analyse and execute one tool call as the pipeline does;
/// analysis errors panic (test bug).
pub async fn call(c: &dyn Connector, tool: &str, args: Value) -> Result<ToolOutput, ExecuteError> {
    c.prepare(tool, &args).await;
    let plan = c
        .analyse(tool, &args)
        .unwrap_or_else(|e| panic!("analyse {tool} {args}: {e}"));
    c.execute(&plan, limits()).await
}

/// `sql_query` with params on a connector; returns the structured result.
pub async fn query(c: &dyn Connector, sql: &str, params: Value) -> Result<Value, ExecuteError> {
    let name = c.info().name.clone();
    call(
        c,
        "sql_query",
        serde_json::json!({"connection": name, "sql": sql, "params": params}),
    )
    .await
    .map(|o| o.value)
}

/// `sql_query` (no params) under a policy cap on rows changed, as a permit's
/// `@max_affected_rows("<max>")` named `policy` would set it.
pub async fn query_capped(c: &dyn Connector, sql: &str, max: u64) -> Result<Value, ExecuteError> {
    let name = c.info().name.clone();
    let args = serde_json::json!({"connection": name, "sql": sql});
    let plan = c
        .analyse("sql_query", &args)
        .unwrap_or_else(|e| panic!("analyse {args}: {e}"));
    let capped = ExecLimits {
        max_affected: Some(gateway_core::connector::AffectedLimit {
            max,
            set_by: "policy `capped`".into(),
        }),
        ..limits()
    };
    c.execute(&plan, capped).await.map(|o| o.value)
}

/// The blast-radius checks every engine must pass, on a table `t` with
/// rows id 1..=5 (columns `id`, `v`) that `c` can write: over-cap writes fail
/// and change nothing, within-cap writes commit, the cap counts the whole call.
pub async fn check_blast_radius(c: &dyn Connector) {
    let count = async || -> i64 {
        let v = query(c, "SELECT count(*) FROM t", Value::Array(vec![]))
            .await
            .unwrap();
        v["rows"][0][0].as_i64().unwrap()
    };
    assert_eq!(count().await, 5);
    for sql in [
        "DELETE FROM t WHERE id IS NOT NULL",
        "UPDATE t SET v = v WHERE id = id + 0",
        // Two statements of 2 rows each: 4 > 3 in one call.
        "DELETE FROM t WHERE id <= 2; DELETE FROM t WHERE id >= 4",
    ] {
        let cap = if sql.contains(';') { 3 } else { 2 };
        match query_capped(c, sql, cap).await {
            Err(ExecuteError::TooManyAffected {
                affected,
                max,
                set_by,
                ..
            }) => {
                assert!(affected > cap, "{sql}: {affected}");
                assert_eq!((max, set_by.as_str()), (cap, "policy `capped`"), "{sql}");
            }
            other => panic!("{sql}: expected TooManyAffected, got {other:?}"),
        }
        assert_eq!(
            count().await,
            5,
            "{sql}: rows still there after the refusal"
        );
    }
    let e = query_capped(c, "DELETE FROM t WHERE id IS NOT NULL", 2)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "this call would affect 5 rows, more than the 2 allowed by policy `capped`; nothing was changed"
    );
    // Within the cap: committed.
    query_capped(c, "DELETE FROM t WHERE id <= 2", 2)
        .await
        .unwrap();
    assert_eq!(count().await, 3);
    query_capped(c, "UPDATE t SET v = 'x' WHERE id = 3", 1)
        .await
        .unwrap();
    let v = query(c, "SELECT v FROM t WHERE id = 3", Value::Array(vec![]))
        .await
        .unwrap();
    assert_eq!(v["rows"][0][0], "x");
    // Reads are never capped.
    query_capped(c, "SELECT * FROM t", 1).await.unwrap();
}

/// `sql` fails with a target error whose text shows `shape` and none of
/// `secrets` (data values the error must not quote).
pub async fn assert_error_hides(c: &dyn Connector, sql: &str, shape: &str, secrets: &[&str]) {
    let e = query(c, sql, serde_json::json!([])).await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(matches!(e, ExecuteError::Target(_)), "{sql}: {text}");
    assert!(text.contains(shape), "{sql}: {text}");
    for secret in secrets {
        assert!(!text.contains(secret), "{sql}: {text}");
    }
}

/// The body of a test binary's `child_server` test: when the parent set
/// `TOLLGATE_CHILD_ARGS` (a JSON list of CLI words), run the `tollgate` CLI
/// with them in this process and exit with its status (so the parent can
/// kill it like a real server); otherwise return at once.
pub fn run_child_server_if_asked() {
    use clap::Parser;
    let Ok(args) = std::env::var("TOLLGATE_CHILD_ARGS") else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).expect("child args");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let code = rt.block_on(tollgate_server::commands::run(
        tollgate_server::cli::Cli::parse_from(args),
    ));
    std::process::exit(match code {
        Ok(c) if c == std::process::ExitCode::SUCCESS => 0,
        Ok(_) => 1,
        Err(e) => {
            eprintln!("{e:#}");
            2
        }
    });
}

/// Log in to the review UI with a bearer token; the session cookie.
pub async fn ui_login(ui: &reqwest::Client, base: &str, token: &str) -> String {
    let r = ui
        .post(format!("{base}/ui/login"))
        .form(&[("token", token), ("next", "/ui")])
        .send()
        .await
        .unwrap();
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}
