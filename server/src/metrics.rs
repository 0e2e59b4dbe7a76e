//! `GET /metrics`: the process's metrics in the Prometheus text format.
//!
//! The numbers are recorded where they happen, through the `metrics` facade
//! ([`gateway_core::metrics`]: calls by tool and decision, call latency,
//! audit append latency); this module installs the process-wide recorder
//! that keeps them (`metrics-exporter-prometheus`, without its own HTTP
//! listener or push gateway: the page is rendered by this axum handler, on
//! the server's own listener and walls) and serves the page. Why that crate
//! rather than `prometheus-client`: the core then depends on a facade only,
//! which records into nothing when no recorder is installed (CLI commands,
//! other embedders), instead of on one exposition library's registry types.
//!
//! `tollgate_approvals_pending` is not kept in memory: each scrape counts
//! the approvals that still wait in the approval store, so the value is
//! right after a restart and for every process sharing the store.
//!
//! Who may scrape is `[server] metrics` ([`MetricsAccess`]). The page holds
//! metric names, served tool names, decision words, the version and
//! numbers; never arguments, principals, SQL, connection names or
//! credentials, and a failure answers with a fixed message.

use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gateway_core::metrics::{APPROVALS_PENDING, AUDIT_APPEND_DURATION, CALL_DURATION};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::auth::authenticate;
pub use crate::config::MetricsAccess;
use crate::errors::error;
use crate::state::AppState;

/// Gauge set to 1, labelled with the running version.
pub const BUILD_INFO: &str = "tollgate_build_info";

/// Counter of HTTP connections closed for room at `server.max_connections`,
/// labelled `reason`: `shed` (an idle unauthenticated one closed for a new
/// one) or `refused` (the new one closed: no room could be made).
pub const CONNECTIONS_DROPPED: &str = "tollgate_http_connections_dropped_total";

/// Count a connection shed for room ([`crate::listener`]).
pub fn connection_shed() {
    metrics::counter!(CONNECTIONS_DROPPED, "reason" => "shed").increment(1);
}

/// Count a new connection refused for want of room ([`crate::listener`]).
pub fn connection_refused() {
    metrics::counter!(CONNECTIONS_DROPPED, "reason" => "refused").increment(1);
}

/// Media type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bucket bounds of a call's duration: from a denial (under a millisecond)
/// to a call that waited on humans (`approval.wait_seconds`, 50 s by default).
const CALL_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// Bucket bounds of one audit append (a group-committed fsync).
const APPEND_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// How often recorded histogram samples are folded into their buckets
/// between scrapes (so memory stays bounded when nobody scrapes).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Why the page cannot be served: the recorder could not be set up (most
/// likely another metrics recorder was installed in this process first).
#[derive(Debug, Clone, thiserror::Error)]
#[error("metrics are unavailable: {0}")]
pub struct MetricsError(String);

static HANDLE: OnceLock<Result<PrometheusHandle, MetricsError>> = OnceLock::new();

/// The process-wide recorder's handle, installing it on first use (the
/// `metrics` recorder is global: one per process, shared by every router
/// built in it).
pub fn install() -> Result<&'static PrometheusHandle, MetricsError> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(CALL_DURATION.into()), CALL_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(AUDIT_APPEND_DURATION.into()),
                        APPEND_BUCKETS,
                    )
                })
                .map_err(|e| MetricsError(e.to_string()))?;
            let handle = builder
                .install_recorder()
                .map_err(|e| MetricsError(e.to_string()))?;
            gateway_core::metrics::describe();
            metrics::describe_gauge!(
                BUILD_INFO,
                "Always 1; the `version` label is the running tollgate's version."
            );
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            metrics::describe_counter!(
                CONNECTIONS_DROPPED,
                "HTTP connections closed at server.max_connections: `shed` (an idle one that never \
                 authenticated, for a new one) or `refused` (the new one)."
            );
            Ok(handle)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Fold histogram samples into buckets every few seconds, for as long as
/// the runtime runs (call once, from `serve`).
pub fn spawn_upkeep() {
    if let Ok(handle) = install() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
}

/// The `/metrics` route under `access` (none when [`MetricsAccess::Off`]).
pub fn router(access: MetricsAccess) -> Router<AppState> {
    // Install now, so counts start with the first call rather than the
    // first scrape; a failure is reported by each scrape.
    if let Err(e) = install() {
        tracing::warn!(error = %e, "GET /metrics will answer 503");
    }
    let route = match access {
        MetricsAccess::Open => get(scrape_open),
        MetricsAccess::Token => get(scrape_with_token),
        MetricsAccess::Off => return Router::new(),
    };
    Router::new().route("/metrics", route)
}

async fn scrape_open(State(state): State<AppState>) -> Response {
    render(&state).await
}

/// `[server] metrics = "token"`: the same 401 as the REST API without a
/// valid bearer, 403 for a principal not permitted `audit:read`.
async fn scrape_with_token(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let principal = match authenticate(&state, &headers).await {
        Ok(p) => p,
        Err(unauthorized) => return unauthorized,
    };
    if !state.sees_all(&principal) {
        return error(
            StatusCode::FORBIDDEN,
            "no policy permits audit:read for you",
        );
    }
    render(&state).await
}

/// Serialises "set the pending gauge, render": the gauge is process-wide,
/// and two routers in one process (tests) each count their own store.
static RENDERING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn render(state: &AppState) -> Response {
    let handle = match install() {
        Ok(h) => h,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let _one = RENDERING.lock().await;
    let pending = match state.approval_service() {
        None => Some(0),
        Some(service) => match service.pending_count().await {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "tollgate_approvals_pending: the approval store could not be read");
                None
            }
        },
    };
    // Unknown (the store failed) is NaN, not a stale or made-up number.
    metrics::gauge!(APPROVALS_PENDING).set(pending.map_or(f64::NAN, |n| n as f64));
    let text = handle.render();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}
