//! HTTP surface: `/mcp` (streamable HTTP behind bearer auth), RFC 9728
//! metadata, health, and the REST API under `/api`. The auth layer is the one
//! place a bearer token becomes a [`Principal`]; without a valid one, `/mcp`
//! answers 401 with a `WWW-Authenticate` pointing at the metadata document.
//! In front of `/mcp`, in order: the Origin check (403), bearer auth (401),
//! the session binding (404 for another principal's `Mcp-Session-Id`), then
//! rmcp's Host allow-list; see [`crate::mcp_guard`].

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gateway_core::identity::Authenticator;
use gateway_core::{Gateway, Principal};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::mcp::McpHandler;
use crate::mcp_guard::{self, AllowedOrigins, SessionOwners};

/// Shared state of the HTTP surface.
#[derive(Clone)]
pub struct AppState {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// Bearer verification.
    pub auth: Arc<Authenticator>,
    /// Public base URL, no trailing slash.
    pub public_url: String,
    /// Issuer to advertise in RFC 9728 metadata.
    pub issuer: Option<String>,
}

/// Build the whole router.
pub fn router(state: AppState, allowed_hosts: Vec<String>, shutdown: CancellationToken) -> Router {
    let gateway = state.gateway.clone();
    let origins = Arc::new(AllowedOrigins::new(&state.public_url, &allowed_hosts));
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts)
        .with_cancellation_token(shutdown)
        .with_sse_keep_alive(Some(std::time::Duration::from_secs(15)))
        // Stateless (2026-07-28) requests whose first message is the result
        // get it as one JSON body instead of an SSE stream; a call that sends
        // progress first (an approval wait) still streams.
        .with_json_response(true);
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
        .nest("/api", api::router())
        .nest("/ui", crate::approvals::ui::router())
        .with_state(state)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A 401 that tells the client where to learn how to authenticate. Per
/// RFC 6750 §3.1, `error="invalid_token"` only when a token was presented.
pub fn unauthorized(state: &AppState, reason: &str, token_given: bool) -> Response {
    let mut challenge = format!(
        "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
        state.public_url
    );
    if token_given {
        challenge.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{}\"",
            reason.replace('"', "'")
        ));
    }
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": "unauthorized", "message": reason})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// Resolve the caller of an HTTP request.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, Response> {
    let Some(token) = bearer(headers) else {
        return Err(unauthorized(state, "missing bearer token", false));
    };
    state.auth.resolve(token).await.map_err(|e| {
        tracing::info!(reason = e.reason(), "rejected bearer token");
        unauthorized(state, &e.to_string(), true)
    })
}

async fn require_bearer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match authenticate(&state, req.headers()).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(resp) => resp,
    }
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
