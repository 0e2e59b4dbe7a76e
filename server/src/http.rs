//! HTTP surface, assembled here and only here: `/mcp` (streamable HTTP
//! behind bearer auth), RFC 9728 metadata, health, `/metrics`
//! ([`crate::metrics`]), the REST API under `/api` ([`crate::api`],
//! [`crate::approvals::api`]) and the web console under `/ui`
//! ([`crate::ui`]). Those modules each offer their own
//! routes and share only the leaf modules [`crate::state`],
//! [`crate::auth`] and [`crate::errors`]; none of them imports this one.
//! In front of `/mcp`, in order: the Origin check (403), bearer auth (401,
//! [`crate::auth`]), the session binding (404 for another principal's
//! `Mcp-Session-Id`), then rmcp's Host allow-list; see [`crate::mcp_guard`].

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::auth::require_bearer;
use crate::mcp::McpHandler;
use crate::mcp_guard::{self, AllowedOrigins, SessionOwners};
use crate::metrics::MetricsAccess;
use crate::state::AppState;
use crate::{api, approvals};

/// Build the whole router, `/metrics` open to anyone who reaches it (the
/// default of `[server] metrics`).
pub fn router(state: AppState, allowed_hosts: Vec<String>, shutdown: CancellationToken) -> Router {
    router_with(state, allowed_hosts, shutdown, MetricsAccess::default())
}

/// Build the whole router, `/metrics` served under `metrics`
/// ([`crate::metrics`]).
pub fn router_with(
    state: AppState,
    allowed_hosts: Vec<String>,
    shutdown: CancellationToken,
    metrics: MetricsAccess,
) -> Router {
    let gateway = state.gateway.clone();
    let max_body = gateway
        .max_argument_bytes()
        .unwrap_or(usize::MAX - crate::config::MCP_ENVELOPE_BYTES)
        .saturating_add(crate::config::MCP_ENVELOPE_BYTES);
    let origins = Arc::new(AllowedOrigins::new(&state.public_url, &allowed_hosts));
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts)
        .with_cancellation_token(shutdown)
        .with_sse_keep_alive(Some(std::time::Duration::from_secs(15)))
        // Stateless (2026-07-28) requests whose first message is the result
        // get it as one JSON body instead of an SSE stream; a call that sends
        // progress first (an approval wait) still streams.
        .with_json_response(true)
        // Room for the largest arguments a call may carry: a call a little
        // over `server.max_argument_bytes` gets the gateway's clear refusal
        // (and its audit event); a body far over it a 413.
        .with_max_request_body_bytes(max_body);
    let handler = McpHandler::new(gateway);
    let mcp = StreamableHttpService::new(
        move || Ok(handler.clone()),
        LocalSessionManager::default().into(),
        config,
    );
    // Layers run outermost (last added) first: Origin, bearer, session binding.
    let mcp = Router::new()
        .fallback_service(mcp)
        .layer(middleware::from_fn_with_state(
            SessionOwners::default(),
            mcp_guard::bind_session,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_bearer,
        ))
        .layer(middleware::from_fn_with_state(
            origins,
            mcp_guard::check_origin,
        ));
    Router::<AppState>::new()
        .nest_service("/mcp", mcp)
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .nest(
            "/api",
            api::router().nest("/approvals", approvals::api::router()),
        )
        .nest("/ui", crate::ui::router())
        .merge(crate::metrics::router(metrics))
        .with_state(state)
        .layer(middleware::from_fn(crate::auth::with_peer))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// RFC 9728 metadata. `authorization_servers` must hold issuer URLs that
/// clients can run OAuth discovery against: an issuer that is not an
/// http(s) URL (the demo's `tollgate-demo`, HS256 deployments) is left out,
/// and clients are expected to come with a bearer token.
async fn resource_metadata(State(state): State<AppState>) -> impl IntoResponse {
    let mut doc = json!({
        "resource": format!("{}/mcp", state.public_url),
        "bearer_methods_supported": ["header"],
        "resource_name": "Tollgate",
        "resource_documentation": format!("{}/ui", state.public_url),
    });
    let servers: Vec<&String> = state
        .issuer
        .iter()
        .filter(|i| i.starts_with("https://") || i.starts_with("http://"))
        .collect();
    if !servers.is_empty() {
        doc["authorization_servers"] = json!(servers);
    }
    axum::Json(doc)
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.gateway.audit().healthy() {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("audit store not writable: {e}"),
        )
            .into_response(),
    }
}
