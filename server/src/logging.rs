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
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt};

/// The target of the pipeline's spans (one per call, one per stage; see
/// `gateway_core::stages::SPAN_TARGET`): at TRACE, so they cost nothing
/// unless traces are exported, and only the trace exporter sees them.
const SPAN_TARGET: &str = gateway_core::stages::SPAN_TARGET;

/// The trace exporter, when `[logging] otlp_endpoint` is set: flush it with
/// [`Traces::shutdown`] before the process exits.
pub struct Traces {
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

impl Traces {
    /// Export what is buffered and stop.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "could not flush the last traces");
        }
    }
}

/// Install the global subscriber once (no trace export).
pub fn init(format: Option<&str>, level: Option<&str>) {
    let _ = init_with_traces(format, level, None);
}

/// Install the global subscriber once; with `otlp` (an OTLP/HTTP base URL,
/// e.g. `http://collector:4318`), also export the pipeline's spans there as
/// OTLP/JSON (`<otlp>/v1/traces`), batched in the background. An exporter
/// that cannot be built is logged and left out: logging still starts.
pub fn init_with_traces(
    format: Option<&str>,
    level: Option<&str>,
    otlp: Option<&str>,
) -> Option<Traces> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level.unwrap_or("info")));
    let logged = filter.and(filter_fn(|meta| {
        meta.target() != SPAN_TARGET && allowed(meta.target(), *meta.level())
    }));
    // Colour only for a person at a terminal (and never with NO_COLOR set):
    // files, journald and log shippers get plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let text = fmt::layer().with_writer(std::io::stderr).with_ansi(colour);
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![if format == Some("json") {
        text.json().flatten_event(true).with_filter(logged).boxed()
    } else {
        text.with_filter(logged).boxed()
    }];
    let (traces, problem) = match otlp.map(exporter) {
        None => (None, None),
        Some(Ok(provider)) => {
            use opentelemetry::trace::TracerProvider;
            let tracer = provider.tracer("tollgate");
            layers.push(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(filter_fn(|meta| meta.target() == SPAN_TARGET))
                    .boxed(),
            );
            (Some(Traces { provider }), None)
        }
        Some(Err(e)) => (None, Some(e)),
    };
    let _ = tracing_subscriber::registry().with(layers).try_init();
    if let Some(e) = problem {
        tracing::error!(error = %e, "traces are NOT exported: cannot build the OTLP exporter");
    }
    traces
}

fn exporter(base: &str) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    // The exporter's HTTP client needs the TLS provider (https collectors).
    crate::init_crypto();
    let endpoint = format!("{}/v1/traces", base.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(endpoint)
        .with_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder_empty()
        .with_service_name("tollgate")
        .build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
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
