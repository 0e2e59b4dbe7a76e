//! Tracing setup: human-readable or JSON lines on stderr (stdout belongs to
//! command output and to MCP over stdio). `RUST_LOG` overrides the level.
//!
//! Whatever `RUST_LOG` says, the log never holds a tool call's raw
//! arguments, SQL or results (they carry the very values masking exists
//! for; the audit record keeps the masked arguments): Tollgate's own code
//! logs none of them, and dependencies that would are capped by
//! [`dependency_allows`]. Tollgate's crates (and `tower_http`'s request
//! lines: method, path, status) may log at any level.

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// Install the global subscriber once.
pub fn init(format: Option<&str>, level: Option<&str>) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level.unwrap_or("info")));
    let base = tracing_subscriber::registry()
        .with(filter)
        .with(filter_fn(|meta| allowed(meta.target(), *meta.level())));
    // Colour only for a person at a terminal (and never with NO_COLOR set):
    // files, journald and log shippers get plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let layer = fmt::layer().with_writer(std::io::stderr).with_ansi(colour);
    let _ = if format == Some("json") {
        base.with(layer.json().flatten_event(true)).try_init()
    } else {
        base.with(layer).try_init()
    };
}

/// True when an event/span of `target` at `level` may be logged at all.
fn allowed(target: &str, level: Level) -> bool {
    let ours = ["tollgate", "gateway_core", "tower_http"].iter().any(|p| {
        target == *p
            || target.starts_with(&format!("{p}::"))
            || target.starts_with(&format!("{p}_"))
    });
    ours || dependency_allows(target, level)
}

/// The most a dependency may log. Known carriers of raw call content:
/// - `rmcp` at DEBUG logs every request with its arguments ("received
///   request") and every response; at TRACE every message;
/// - `tokio_postgres` at DEBUG logs each statement's SQL and bound
///   parameters; at INFO the server's NOTICEs (which may quote data);
/// - `sqlx::query` logs each statement's SQL (DEBUG/INFO) and slow ones
///   at WARN, with the text.
///
/// Any other dependency is capped at INFO: their DEBUG/TRACE output is not
/// reviewed for call content.
fn dependency_allows(target: &str, level: Level) -> bool {
    let under = |p: &str| target == p || target.starts_with(&format!("{p}::"));
    if under("sqlx::query") {
        false
    } else if under("tokio_postgres") {
        level <= Level::WARN
    } else {
        level <= Level::INFO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_that_log_call_content_are_capped() {
        assert!(!allowed("rmcp::service", Level::DEBUG));
        assert!(!allowed("rmcp::service", Level::TRACE));
        assert!(allowed("rmcp::service", Level::INFO));
        assert!(!allowed("tokio_postgres::query", Level::DEBUG));
        assert!(!allowed("tokio_postgres::connection", Level::INFO));
        assert!(allowed("tokio_postgres::connection", Level::WARN));
        assert!(!allowed("sqlx::query", Level::WARN));
        assert!(!allowed("sqlx::query", Level::ERROR));
        assert!(!allowed("hyper::proto", Level::DEBUG));
        // Ours, at any level (they log no call content).
        assert!(allowed("tollgate_server::mcp", Level::TRACE));
        assert!(allowed("tollgate_sql::pg", Level::DEBUG));
        assert!(allowed("gateway_core::approval", Level::DEBUG));
        assert!(allowed("tower_http::trace::on_request", Level::DEBUG));
        assert!(!allowed("tollgatex", Level::DEBUG));
    }
}
