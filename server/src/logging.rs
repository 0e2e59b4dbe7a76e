//! Tracing setup: human-readable or JSON lines on stderr (stdout belongs to
//! command output and to MCP over stdio). `RUST_LOG` overrides the level.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber once.
pub fn init(format: Option<&str>, level: Option<&str>) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level.unwrap_or("info")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == Some("json") {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
