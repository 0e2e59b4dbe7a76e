//! Integration test support: throwaway database servers started on free
//! loopback ports in temp dirs and stopped (and deleted) on drop, plus small
//! helpers to drive a connector through `analyse` + `execute`.
//!
//! Never uses the machine's own servers (5432/3306). Missing binaries are a
//! hard failure naming the package to install, never a skip. Several test
//! binaries may run at once: every server gets its own port and directory.

pub mod bench;
pub mod mariadb;
pub mod pg;
pub mod util;

pub use mariadb::MariaDbServer;
pub use pg::PgServer;
pub use util::{TempDir, free_port};

use std::sync::Arc;

use gateway_core::connector::{Connector, ExecLimits, ExecuteError, ToolOutput};
use serde_json::Value;

/// Generous default limits for tests (the connection's own caps apply too).
pub const LIMITS: ExecLimits = ExecLimits {
    max_rows: 100_000,
    max_bytes: 64 * 1024 * 1024,
};

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
    c.execute(&plan, LIMITS).await
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
