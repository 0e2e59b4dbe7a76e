//! `tollgate serve`: MCP over streamable HTTP (plus REST and UI), or stdio.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use gateway_core::{Gateway, Principal};
use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

use super::load_config;
use crate::config::Config;
use crate::http::router_with;
use crate::mcp::McpHandler;
use crate::state::AppState;
use crate::{app, checkpoint, classify, logging};

/// How long `serve` waits for the first classification before serving anyway.
const FIRST_CLASSIFICATION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Load the config and serve until Ctrl-C / SIGTERM.
pub async fn run(path: &Path, stdio: bool, log_format: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let otlp = config
        .logging
        .otlp_endpoint
        .clone()
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .filter(|u| !u.is_empty());
    let traces = logging::init_with_traces(
        log_format.or(config.logging.format.as_deref()),
        config.logging.level.as_deref(),
        otlp.as_deref(),
    );
    let gateway = app::gateway(&config).await?;
    // Classification runs in the background; serving waits for its first
    // run a little (most databases are sampled in well under a second), so
    // that first calls find columns classified, but never long.
    let first = classify::spawn(gateway.clone(), classify::classifier(&config, &gateway)?);
    if tokio::time::timeout(FIRST_CLASSIFICATION_WAIT, first)
        .await
        .is_err()
    {
        tracing::warn!(
            wait_ms = FIRST_CLASSIFICATION_WAIT.as_millis() as u64,
            "serving before the first classification finished; columns it has not \
             classified yet are masked by rules and detectors only until it does"
        );
    }
    // Checkpoints every interval, and one more once serving stopped (after
    // the last call's event is written).
    let checkpoints = checkpoint::start(&config, gateway.audit().clone())?;
    let served = if stdio {
        serve_stdio(&config, gateway.clone()).await
    } else {
        serve_http(&config, gateway.clone(), None).await
    };
    // The last window of refusals is in the chain before the checkpoint.
    if let Err(e) = gateway.flush_refusals().await {
        tracing::error!(error = %e, "the last refusal counts could NOT be recorded at shutdown");
    }
    if let Some(c) = checkpoints {
        c.finish().await;
    }
    // Everything appended is on disk before the process ends.
    if let Err(e) = gateway.audit().sync().await {
        tracing::error!(error = %e, "cannot flush the audit store at shutdown");
    }
    if let Some(t) = traces {
        tokio::task::spawn_blocking(move || t.shutdown()).await.ok();
    }
    served
}

async fn serve_stdio(config: &Config, gateway: Arc<Gateway>) -> anyhow::Result<ExitCode> {
    let s = config
        .stdio
        .clone()
        .context("--stdio needs a [stdio] section with the caller's sub and groups")?;
    crate::policy_watch::spawn(config, gateway.clone());
    spawn_refusal_flush(gateway.clone());
    let handler = McpHandler::stdio(
        gateway,
        Principal {
            sub: s.sub,
            groups: s.groups,
        },
    );
    let service = handler
        // Non-blocking pipes on the IO reactor when stdin/stdout are FIFOs (as
        // MCP clients launch servers), instead of a blocking-pool thread per
        // read and write; anything else falls back to the blocking handles.
        .serve(rmcp::transport::stdio_pipes())
        .await
        .map_err(|e| anyhow!("stdio: {e}"))?;
    // Ctrl-C / SIGTERM end the session as a closed stdin does, so what
    // follows serving (the shutdown checkpoint) still runs.
    let session = service.cancellation_token();
    let stop = shutdown_signal();
    let signal = tokio::spawn(async move {
        stop.await;
        session.cancel();
    });
    let quit = service.waiting().await;
    signal.abort();
    quit.map_err(|e| anyhow!("stdio: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// Hosts accepted in the Host header of /mcp: loopback, the listen address,
/// the public URL's host, and `server.allowed_hosts`.
fn allowed_hosts(config: &Config) -> Vec<String> {
    let mut hosts: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "[::1]".into(),
    ];
    hosts.push(config.server.listen.clone());
    if let Some(host) = config
        .public_url()
        .split("://")
        .nth(1)
        .map(|r| r.split('/').next().unwrap_or(r).to_string())
    {
        hosts.push(host.clone());
        if let Some((h, _)) = host.rsplit_once(':') {
            hosts.push(h.to_string());
        }
    }
    hosts.extend(config.server.allowed_hosts.iter().cloned());
    hosts
}

/// Serve HTTP; `ready` is told the bound address (the demo prints it).
pub async fn serve_http(
    config: &Config,
    gateway: Arc<Gateway>,
    ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> anyhow::Result<ExitCode> {
    let auth = app::authenticator(config)?.context(
        "serving HTTP needs an [auth] key: auth.hs256_secret, auth.jwks_url or auth.jwks_file",
    )?;
    let shutdown = CancellationToken::new();
    let stop = shutdown_signal();
    crate::policy_watch::spawn(config, gateway.clone());
    spawn_refusal_flush(gateway.clone());
    let state = AppState {
        gateway,
        auth: Arc::new(auth),
        public_url: config.public_url(),
        issuer: config.auth.issuer.clone(),
        login: Arc::new(crate::ui::login::Login::from_config(config)?),
    };
    let app = router_with(
        state,
        allowed_hosts(config),
        shutdown.clone(),
        config.server.metrics,
    );
    crate::metrics::spawn_upkeep();
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "tollgate listening: MCP at /mcp, REST at /api, UI at /ui");
    if let Some(tx) = ready {
        let _ = tx.send(addr);
    }
    let limits = crate::listener::ListenLimits {
        header_timeout: config.server.header_timeout.0,
        body_timeout: config.server.body_timeout.0,
        max_connections: config.server.max_connections,
    };
    crate::listener::serve(listener, app, limits, async move {
        stop.await;
        shutdown.cancel();
    })
    .await;
    Ok(ExitCode::SUCCESS)
}

/// Every [`REFUSAL_WINDOW`], append the refused authentications and the
/// calls refused by limits counted since the last window as one
/// `auth_refused` and one `rate_limited` event (none when there were none);
/// a failed append keeps the counts for the next window.
fn spawn_refusal_flush(gateway: Arc<Gateway>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFUSAL_WINDOW);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = gateway.flush_refusals().await {
                tracing::error!(error = %e, "refusal counts NOT recorded; kept for the next window");
            }
        }
    });
}

/// How often refusal counts are written to the audit chain.
const REFUSAL_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a signal that arrives
/// between "listening" and the first poll must not fall back to the default
/// action (exit at once, skipping the graceful shutdown and its checkpoint).
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "cannot handle SIGTERM; only Ctrl-C stops gracefully");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
